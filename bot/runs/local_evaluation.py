"""Running `retrain.run` and `evaluate.run` on this worker and reading the metrics they leave."""

from __future__ import annotations

import os
import shlex
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from bot.core.comparison import Metrics, RunOutcome, metrics_paths, read_metrics
from bot.core.config import RepoConfig
from bot.core.metrics import Stat, aggregate
from bot.core.pr_facts import Retrain
from bot.runs import runner
from bot.runs.output_commits import OutputCapture
from bot.runs.sandbox import require
from bot.settings import SANDBOX_NONE, Settings

# .github/mlgate.yml has no retrain timeout; a training run gets this long before it is killed.
RETRAIN_TIMEOUT = 4 * 3600


def run_evaluation(
    settings: Settings,
    config: RepoConfig,
    *,
    repo: str,
    pr: int | None,
    sha: str,
    clone_url: str,
    token: str,
    on_step: Callable[[str], None] = lambda step: None,
    retrain: Retrain | None = None,
    capture: OutputCapture | None = None,
) -> RunOutcome:
    """Fetch exactly `sha`, run `retrain.run` if asked, then `evaluate.run` (`repeats` times),
    and read the metrics files it left; the checkout is removed afterwards. `capture` (a
    `/retrain` matrix candidate) reads the outputs the retrain changed, before evaluating.

    Only trusted code gets here; it runs in the sandbox (MLGATE_SANDBOX) with the step's
    `network` and `memory`, and sees the secrets the operator listed in
    MLGATE_RUNNER_SECRETS, redacted from its log. `token` fetches the checkout (a token that
    reads this repository only). Raises SandboxUnavailable, before anything is fetched, where
    no sandbox can be set up.
    """
    if settings.sandbox != SANDBOX_NONE:
        require()  # nothing to fetch for a run that cannot happen
    allowed = runner.allowed_secrets(settings.runner_secrets, os.environ)
    checkout = runner.checkout_path(settings.data_dir, repo, pr, sha)
    try:
        on_step("fetching")
        runner.fetch(clone_url, sha, checkout, token)
        if capture is not None:
            # Read from git before the run: afterwards .git is the run's to tamper with.
            capture.before(checkout, sha)
        return _run_steps(
            settings, config, checkout, allowed, repo, pr, sha, token, on_step, retrain, capture
        )
    finally:
        runner.remove_checkout(checkout)


def _run_steps(
    settings: Settings,
    config: RepoConfig,
    checkout: Path,
    allowed: dict[str, str],
    repo: str,
    pr: int | None,
    sha: str,
    token: str,
    on_step: Callable[[str], None],
    retrain: Retrain | None,
    capture: OutputCapture | None = None,
) -> RunOutcome:
    params = dict(retrain.parameters) if retrain is not None else {}

    def execute(
        argv: Sequence[str], timeout: float, network: bool, memory: int
    ) -> runner.RunResult:
        env = runner.run_environment(
            params=params,
            run_id=uuid.uuid4().hex,
            repo=repo,
            pr=pr,
            sha=sha,
            allowed_secrets=allowed,
            home=runner.fresh_home(checkout),
        )
        return runner.run(
            argv,
            checkout,
            env=env,
            timeout=timeout,
            secrets=[token, *allowed.values()],
            network=network,
            memory=memory,
            sandbox=settings.sandbox,
            data_dir=settings.data_dir,
        )

    logs: list[str] = []
    if retrain is not None:
        train = config.retrain
        if train.run is None:
            return RunOutcome({}, None, "", failure="`retrain.run` is not configured")
        on_step("retraining")
        result = execute(train.run, RETRAIN_TIMEOUT, train.network, train.memory)
        logs.append(result.log)
        if failure := _failure(train.run, result, RETRAIN_TIMEOUT):
            return RunOutcome({}, None, result.log, failure=failure)
        if capture is not None:
            capture.after(checkout)
    runs: list[Metrics] = []
    evaluate = config.evaluate.run
    repeats = config.evaluate.repeats if evaluate is not None else 1
    for index in range(repeats):
        if evaluate is not None:
            on_step(f"evaluating {index + 1}/{repeats}" if repeats > 1 else "evaluating")
            step = config.evaluate
            result = execute(evaluate, step.timeout, step.network, step.memory)
            logs.append(result.log)
            if failure := _failure(evaluate, result, config.evaluate.timeout):
                return RunOutcome({}, None, result.log, failure=failure)
        paths = metrics_paths(lambda path, _rev: _read_local(checkout, path), config, sha)
        runs.append(read_metrics(lambda p: _read_local(checkout, p), paths))
    # The retrain's log and the last evaluation's: repeats print the same thing again.
    tail = logs[:1] + logs[-1:] if retrain is not None and len(logs) > 1 else logs[-1:]
    outcome = _combine(runs, "\n".join(tail))
    sources = {
        p: c.decode("utf-8", "replace") for p in outcome.metrics if (c := _read_local(checkout, p))
    }
    return replace(outcome, sources=sources)


def _failure(argv: Sequence[str], result: runner.RunResult, timeout: float) -> str | None:
    if result.timed_out:
        return f"`{shlex.join(argv)}` timed out after {timeout:.0f} s"
    if result.exit_code != 0:
        return f"`{shlex.join(argv)}` exited with {result.exit_code}"
    return None


def _read_local(checkout: Path, path: str) -> bytes | None:
    target = (checkout / path).resolve()
    # A metrics path from the repository must not read outside its checkout.
    if not target.is_relative_to(checkout.resolve()) or not target.is_file():
        return None
    return target.read_bytes()


def _combine(runs: Sequence[Metrics], log_tail: str) -> RunOutcome:
    """One run as it is; several as means, with their spread as the noise."""
    if len(runs) == 1:
        return RunOutcome(runs[0], None, log_tail)
    means: Metrics = {}
    noise: dict[str, Stat] = {}  # keyed `path:metric`, as evaluate_gates reads it
    for path in sorted({p for run in runs for p in run}):
        stats = aggregate([run.get(path, {}) for run in runs])  # type: ignore[misc]
        means[path] = {metric: stat.mean for metric, stat in stats.items()}
        noise |= {f"{path}:{metric}": stat for metric, stat in stats.items()}
    return RunOutcome(means, noise, log_tail)
