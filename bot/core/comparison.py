"""The comparison of a head revision with its base, from any reader of files at revisions."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core import dvc, gates, slice_gates, training_curves
from bot.core.config import ReadAt, RepoConfig
from bot.core.dvc_project import (
    MISSING,
    PROJECT_FILE,
    MetricsLayout,
    RevisionFiles,
    expand,
    load_layout,
    read_metrics_file,
)
from bot.core.evaluation_result import Evaluation
from bot.core.metrics import MetricValue, Stat, parse_metrics
from bot.core.setting_hints import METRICS_FILES
from bot.errors import DvcFileError, MetricsFileError, MetricsNotInGit

Metrics = dict[str, dict[str, MetricValue]]

# Where a repository without dvc.yaml most often keeps its metrics: those of these paths that
# exist at a revision are its metrics files there, unless `metrics.files` names others.
COMMON_METRICS_FILES = ("metrics.json", "metrics.yaml", "eval/metrics.json", "reports/metrics.json")


@dataclass(frozen=True)
class RunOutcome:
    """Head metrics from running the evaluation, instead of the committed metrics files."""

    metrics: Metrics
    noise: dict[str, Stat] | None
    log_tail: str
    failure: str | None = None
    # The metrics files as the run left them: annotations point at their lines.
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RevisionMetrics:
    """One revision's metrics, read as `dvc metrics show` reads them.

    `metrics` holds the files that loaded; `problems` the ones that did not, by path, with
    the reason (DVC shows their values as null); `error` says why the revision's DVC files
    did not load at all (then nothing is read). `paths` are the files looked for and
    `contents` the bytes of those read, for annotations.
    """

    metrics: Metrics = field(default_factory=dict)
    problems: Mapping[str, MetricsFileError] = field(default_factory=dict)
    error: DvcFileError | None = None
    paths: Sequence[str] = ()
    contents: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether DVC would list this revision as one whose metrics failed to load."""
        return self.error is not None or bool(self.problems)

    def messages(self) -> list[str]:
        """What went wrong, one line per file (or one for the revision)."""
        if self.error is not None:
            return [f"its DVC files do not load, so no metrics are read: {self.error}"]
        return [str(self.problems[path]) for path in sorted(self.problems)]


def has_pipeline(layout: MetricsLayout) -> bool:
    """Whether the revision has a dvc.yaml (which then alone says what its metrics are)."""
    return any(posixpath.basename(path) == PROJECT_FILE for path in layout.dvc_files)


def default_metrics_files(files: RevisionFiles, layout: MetricsLayout) -> list[str]:
    """Without `metrics.files`: those the DVC files declare; in a revision without any
    dvc.yaml, the COMMON_METRICS_FILES that exist there (committed, or tracked by a `.dvc`
    file), so that a plain repository needs no configuration."""
    if layout.declared or has_pipeline(layout):
        return expand(files, layout, layout.declared)
    if files.listing is not None:
        present = set(files.listing) - layout.ignored
        return [p for p in COMMON_METRICS_FILES if p in present or p in layout.outputs]
    return [p for p in COMMON_METRICS_FILES if p in layout.outputs or files.read(p) is not None]


def revision_metrics(files: RevisionFiles, config: RepoConfig) -> RevisionMetrics:
    """Every metrics file of a revision: configured ones, else all that its DVC files declare
    (in a revision without dvc.yaml, the COMMON_METRICS_FILES that exist).

    Configured files play the part of `dvc metrics diff`'s targets: a committed one is read
    even when a dvc.yaml is broken, as DVC does. Folders are expanded to their files.
    """
    layout = load_layout(files)
    if config.metrics.files:
        if layout.failure is not None:
            # DVC cannot list folders then, and reads committed targets from git alone.
            paths = list(config.metrics.files)
            layout = MetricsLayout()
        else:
            paths = expand(files, layout, config.metrics.files)
    elif layout.failure is not None:
        return RevisionMetrics(error=layout.failure)
    else:
        paths = default_metrics_files(files, layout)
    found: Metrics = {}
    problems: dict[str, MetricsFileError] = {}
    contents: dict[str, bytes] = {}
    for path in paths:
        try:
            content = read_metrics_file(files, layout, path)
            found[path] = dict(parse_metrics(content, path))
        except MetricsFileError as exc:
            problems[path] = exc
            continue
        contents[path] = content
    return RevisionMetrics(found, problems, None, paths, contents)


def _files_at(
    read: ReadAt,
    rev: str,
    list_files: Callable[[str], Sequence[str]] | None,
    cache: Callable[[str], bytes | None] | None,
) -> RevisionFiles:
    return RevisionFiles(
        lambda path: read(path, rev),
        list_files(rev) if list_files is not None else None,
        cache,
    )


def metrics_paths(
    read: ReadAt,
    config: RepoConfig,
    rev: str,
    list_files: Callable[[str], Sequence[str]] | None = None,
) -> list[str]:
    """The configured metrics files, else those the DVC files declare at `rev` (without any
    dvc.yaml there, the COMMON_METRICS_FILES that exist).

    `${…}` templates are filled from that revision's params. With `list_files` (every file
    path at a revision) every dvc.yaml and `.dvc` file is read and folders are expanded;
    without it, the root dvc.yaml alone. When the DVC files do not load, the root dvc.yaml's
    plainly written paths are returned; `DvcFileError` only when that file itself is broken.
    """
    if config.metrics.files:
        return list(config.metrics.files)
    files = _files_at(read, rev, list_files, None)
    layout = load_layout(files)
    if layout.failure is not None:
        # Callers classify changed paths with this before any error can be shown: keep to
        # what a broken revision always gave them rather than fail there.
        root = files.read(PROJECT_FILE)
        return dvc.metrics_files(root) if root is not None else []
    return default_metrics_files(files, layout)


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
                # A stage's params file is relative to its wdir, as its outputs are.
                stages = posixpath.join(posixpath.dirname(path), "dvc.yaml")
                wdirs = dvc.stage_wdirs(contents[stages], stages) if stages in contents else {}
                lock = dvc.parse_dvc_lock(content, path)
                for file, lock_values in dvc.lock_params(lock, wdirs).items():
                    values.setdefault(file, lock_values)
        sides[side] = (contents, values)
    data = dvc.diff_outputs(dvc.outputs(sides["base"][0]), dvc.outputs(sides["head"][0]))
    return data, dvc.diff_params(sides["base"][1], sides["head"][1])


@dataclass(frozen=True)
class Comparison:
    """An evaluation and the two revisions' metrics as read, problems included."""

    evaluation: Evaluation
    base: RevisionMetrics
    head: RevisionMetrics


def _notes(side: str, sha: str, metrics: RevisionMetrics) -> list[str]:
    return [f"At the {side} ({sha[:7]}): {message}" for message in metrics.messages()]


def _spans(paths: Sequence[str]) -> str:
    return ", ".join(f"`{p}`" for p in paths)


def not_found_note(
    results: Sequence[gates.GateResult], read: Sequence[str], looked_for: Sequence[str]
) -> str | None:
    """A note for gated metrics found in no metrics file: where mlgate looked (the files
    `read`, else those `looked_for`, else how it finds them) and the setting that names the
    right file; None when every gated metric was found."""
    missing = sorted({r.metric for r in results if r.file is None})
    if not missing:
        return None
    if read:
        where = f"in none of the metrics files read ({_spans(read)})"
    elif looked_for:
        where = f"in no metrics file: none of {_spans(looked_for)} exists at base or head"
    else:
        where = (
            "in no metrics file: `dvc.yaml` declares none (without a `dvc.yaml`, mlgate "
            f"reads {_spans(COMMON_METRICS_FILES)} where they exist)"
        )
    return f"Gated {_spans(missing)} found {where}. To read another file, {METRICS_FILES.inline()}"


def _raise_broken(metrics: RevisionMetrics) -> None:
    # The bot's long-standing rule: a committed file that does not parse fails the run with
    # its precise message. Files that are missing or only in DVC's cache become notes.
    if metrics.error is not None:
        raise metrics.error
    for path in sorted(metrics.problems):
        problem = metrics.problems[path]
        if not isinstance(problem, MetricsNotInGit) and problem.reason != MISSING:
            raise problem


def compare_revisions_metrics(
    read: ReadAt,
    config: RepoConfig,
    changed: Sequence[str],
    base: str,
    head: str,
    *,
    base_ref: str = "main",
    baseline: Mapping[str, Mapping[str, MetricValue]] | None = None,
    measure: Callable[[], RunOutcome] | None = None,
    list_files: Callable[[str], Sequence[str]] | None = None,
    cache: Callable[[str], bytes | None] | None = None,
    tolerant: bool = False,
) -> Comparison:
    """`compare`, keeping each revision's metrics and problems.

    `tolerant` reads like `dvc metrics diff`: a file or dvc.yaml that does not load counts
    as missing (its values null) and is named in the notes; otherwise such a file raises
    `MetricsFileError` / `DvcFileError`, as the bot has always failed on it.
    """
    head_read = revision_metrics(_files_at(read, head, list_files, cache), config)
    if not tolerant:
        _raise_broken(head_read)
    notes: list[str] = []
    try:
        # Changed DVC files are read before any evaluation runs, so a broken one fails fast.
        data, params = data_and_params(read, changed, base, head)
    except DvcFileError as exc:
        if not tolerant:
            raise
        data, params = [], []
        notes.append(f"Data and parameter changes are not shown: {exc}")
    # Stored base metrics spare reading the base (API calls, for the bot).
    base_read = (
        RevisionMetrics()
        if baseline
        else revision_metrics(_files_at(read, base, list_files, cache), config)
    )
    if not tolerant:
        _raise_broken(base_read)
    old = baseline or base_read.metrics
    noise: dict[str, Stat] | None = None
    log_tail = ""
    sources: Mapping[str, str] | None = None
    if measure is not None:
        outcome = measure()
        if outcome.failure is not None:
            evaluation = Evaluation(
                head_sha=head,
                base_sha=base,
                log_tail=outcome.log_tail,
                base_ref=base_ref,
                error=outcome.failure,
            )
            return Comparison(evaluation, base_read, head_read)
        new, noise, log_tail = outcome.metrics, outcome.noise, outcome.log_tail
        sources = outcome.sources
    else:
        new = head_read.metrics
        notes.extend(_notes("head", head, head_read))
    notes = _notes("base", base, base_read) + notes
    results = slice_gates.evaluate_with_slices(config.gates, old, new, noise)
    summaries = slice_gates.summarise_slices(config.gates, results)
    looked_for = list(dict.fromkeys([*base_read.paths, *head_read.paths]))
    missing = not_found_note(results, sorted(set(old) | set(new)), looked_for)
    if missing is not None:
        notes.append(missing)
    evaluation = Evaluation(
        head_sha=head,
        base_sha=base,
        old=old,
        new=new,
        gates=results,
        data_changes=data,
        param_changes=params,
        noise=noise,
        log_tail=log_tail,
        notes=notes,
        base_ref=base_ref,
        sources=sources
        if sources is not None
        # Each of these parsed as metrics, so it is UTF-8.
        else {p: c.decode() for p, c in head_read.contents.items() if p in new},
        slices="\n".join(slice_gates.render_slices(summary) for summary in summaries),
        sliced=tuple(sorted({r.metric for summary in summaries for r in summary.results})),
        curves=_curves(read, base, head, list_files),
    )
    return Comparison(evaluation, base_read, head_read)


def _curves(
    read: ReadAt, base: str, head: str, list_files: Callable[[str], Sequence[str]] | None
) -> str:
    """The training curves the head's root dvc.yaml declares under `plots:`, base against
    head (dvclive folders expanded where the revision's files can be listed)."""
    dvc_yaml = read(PROJECT_FILE, head)
    if dvc_yaml is None:
        return ""
    sources, problems = training_curves.plot_sources(dvc_yaml)
    # The plots dvc.yaml names but that cannot be read are listed with the unreadable files.
    drawn = [training_curves.Curve(PROJECT_FILE, "", problems=tuple(problems))]
    if sources:  # else no listing is fetched
        paths = [*list_files(head), *list_files(base)] if list_files is not None else []
        for source in training_curves.expand_directories(sources, paths):
            drawn += training_curves.curves_for(
                source, read(source.file, base), read(source.file, head)
            )
    return training_curves.render_curves(drawn, base[:7], head[:7])


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
    list_files: Callable[[str], Sequence[str]] | None = None,
    cache: Callable[[str], bytes | None] | None = None,
) -> Evaluation:
    """Base and head metrics, data and parameter changes, gates: the evaluation to show.

    Metrics are read from the files at each revision, each with its own DVC files (see
    `revision_metrics`); `baseline` (stored base metrics) replaces the base's files, and
    `measure` (running the evaluation) the head's. `list_files(rev)`, every file path at a
    revision (on GitHub: the Git trees API, `GET /repos/{o}/{r}/git/trees/{sha}?recursive=1`),
    lets every dvc.yaml count, not only the root one. Metrics files only in DVC's cache,
    or missing, are named in the notes. A failed `measure` gives an evaluation carrying
    only its error and log. `DvcFileError` and `MetricsFileError` say which committed file
    is broken.
    """
    return compare_revisions_metrics(
        read,
        config,
        changed,
        base,
        head,
        base_ref=base_ref,
        baseline=baseline,
        measure=measure,
        list_files=list_files,
        cache=cache,
    ).evaluation
