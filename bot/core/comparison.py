"""The comparison of a head revision with its base, from any reader of files at revisions."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core import dvc, gates
from bot.core.config import ReadAt, RepoConfig
from bot.core.evaluation_result import Evaluation
from bot.core.metrics import MetricValue, Stat, parse_metrics

Metrics = dict[str, dict[str, MetricValue]]


@dataclass(frozen=True)
class RunOutcome:
    """Head metrics from running the evaluation, instead of the committed metrics files."""

    metrics: Metrics
    noise: dict[str, Stat] | None
    log_tail: str
    failure: str | None = None
    # The metrics files as the run left them: annotations point at their lines.
    sources: Mapping[str, str] = field(default_factory=dict)


def metrics_paths(read: ReadAt, config: RepoConfig, rev: str) -> list[str]:
    """The configured metrics files, else those dvc.yaml declares at `rev`."""
    if config.metrics.files:
        return list(config.metrics.files)
    dvc_yaml = read("dvc.yaml", rev)
    return dvc.metrics_files(dvc_yaml) if dvc_yaml is not None else []


def read_metrics(read: Callable[[str], bytes | None], paths: Sequence[str]) -> Metrics:
    """Metrics of each file that exists; a missing file is simply absent."""
    found: Metrics = {}
    for path in paths:
        content = read(path)
        if content is not None:
            found[path] = dict(parse_metrics(content, path))
    return found


def data_files(paths: Sequence[str]) -> list[str]:
    """The changed paths DVC describes data in, plus the dvc.yaml that sets stage wdirs."""
    names = [p for p in paths if p.endswith(".dvc") or posixpath.basename(p) == "dvc.lock"]
    wdirs = {posixpath.join(posixpath.dirname(p), "dvc.yaml") for p in names if "dvc.lock" in p}
    return sorted(set(names) | wdirs)


def data_and_params(
    read: ReadAt, changed: Sequence[str], base: str, head: str
) -> tuple[list[dvc.DataChange], list[dvc.ParamChange]]:
    """Outputs and parameters that differ between base and head, read from changed files."""
    wanted = data_files(changed)
    params = [p for p in changed if posixpath.basename(p) == "params.yaml"]
    sides: dict[str, tuple[dict[str, bytes], dict[str, dict[str, Any]]]] = {}
    for side, rev in (("base", base), ("head", head)):
        contents = {p: c for p in wanted if (c := read(p, rev)) is not None}
        values: dict[str, dict[str, Any]] = {}
        for path in params:
            content = read(path, rev)
            if content is not None:
                values[path] = dvc.flatten_params(content, path)
        for path, content in contents.items():
            if posixpath.basename(path) == "dvc.lock":
                for file, lock_values in dvc.lock_params(dvc.parse_dvc_lock(content, path)).items():
                    values.setdefault(file, lock_values)
        sides[side] = (contents, values)
    data = dvc.diff_outputs(dvc.outputs(sides["base"][0]), dvc.outputs(sides["head"][0]))
    return data, dvc.diff_params(sides["base"][1], sides["head"][1])


def compare(
    read: ReadAt,
    config: RepoConfig,
    changed: Sequence[str],
    base: str,
    head: str,
    *,
    base_ref: str = "main",
    baseline: Mapping[str, Mapping[str, MetricValue]] | None = None,
    measure: Callable[[], RunOutcome] | None = None,
) -> Evaluation:
    """Base and head metrics, data and parameter changes, gates: the evaluation to show.

    Metrics are read from the files at each revision; `baseline` (stored base metrics)
    replaces the base's files, and `measure` (running the evaluation) the head's. A failed
    `measure` gives an evaluation carrying only its error and log. `DvcFileError` and
    `MetricsFileError` say which committed file is broken.
    """
    head_paths = metrics_paths(read, config, head)
    # Changed DVC files are read before any evaluation runs, so a broken one fails fast.
    data, params = data_and_params(read, changed, base, head)
    base_paths = sorted(set(metrics_paths(read, config, base)) | set(head_paths))
    old = baseline or read_metrics(lambda p: read(p, base), base_paths)
    noise: dict[str, Stat] | None = None
    log_tail = ""
    sources: Mapping[str, str] | None = None
    if measure is not None:
        outcome = measure()
        if outcome.failure is not None:
            return Evaluation(
                head_sha=head,
                base_sha=base,
                log_tail=outcome.log_tail,
                base_ref=base_ref,
                error=outcome.failure,
            )
        new, noise, log_tail = outcome.metrics, outcome.noise, outcome.log_tail
        sources = outcome.sources
    else:
        new = read_metrics(lambda p: read(p, head), head_paths)
    return Evaluation(
        head_sha=head,
        base_sha=base,
        old=old,
        new=new,
        gates=gates.evaluate_gates(config.gates, old, new, noise),
        data_changes=data,
        param_changes=params,
        noise=noise,
        log_tail=log_tail,
        base_ref=base_ref,
        sources=sources
        if sources is not None
        else {p: c.decode("utf-8", "replace") for p in new if (c := read(p, head))},
    )
