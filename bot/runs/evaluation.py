"""Evaluating a PR: read config and changes, compare metrics with the base, publish the result."""

from __future__ import annotations

import logging
import os
import shlex
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import redis
import requests

from bot.core.changes import classify
from bot.core.comparison import (
    Metrics,
    RunOutcome,
    compare,
    metrics_paths,
    read_metrics,
)
from bot.core.config import CONFIG_PATH, RepoConfig, load_config, parse_config
from bot.core.evaluation_result import Evaluation
from bot.core.metrics import Stat, aggregate
from bot.core.permissions import at_least, level
from bot.core.report import render_check_run, render_comment
from bot.errors import (
    DvcFileError,
    MetricsFileError,
    RepoConfigError,
    RunnerError,
    SemaphoreError,
    SettingsError,
    UntrustedCode,
)
from bot.github.github_client import GitHubClient
from bot.github.repo_files import RepoFiles
from bot.runs import deploy, runner, sticky_comment
from bot.runs.check_runs import CONFIG_CHECK, QUALITY_CHECK, Checks
from bot.semaphore.pipelines import (
    UPLOAD_COMMAND,
    PipelineDone,
    describe_failure,
    failed_from_pipeline,
    fallback_workflow_url,
    workflow_parameters,
)
from bot.semaphore.semaphore_client import SemaphoreClient, pull_request_reference
from bot.settings import Settings
from bot.state import audit, deploys, pr_heads, stored_evaluations
from bot.state.baselines import baseline, record_baseline, trend
from bot.state.semaphore_runs import SemaphoreRun, record_run
from bot.state.uploads import uploaded_metrics

log = logging.getLogger(__name__)

TREND_LENGTH = 20
# .github/mlgate.yml has no retrain timeout; a training run gets this long before it is killed.
RETRAIN_TIMEOUT = 4 * 3600
# Audit entries read for a comment: the repository's newest, of which this PR's are shown.
AUDIT_SCAN = 500
# Outcomes of `Evaluator.evaluate` for a run left to Semaphore: started, or not possible here.
SEMAPHORE_STARTED = "semaphore-started"
SEMAPHORE_UNCONFIGURED = "semaphore-unconfigured"
RETRAIN = "retrain"  # the kind of a Semaphore run that retrains; "evaluate" only evaluates


@dataclass(frozen=True)
class PullRequest:
    """The facts about a PR that an evaluation needs, from the API or a webhook payload."""

    repo: str
    number: int
    head_sha: str
    base_sha: str
    base_ref: str
    default_branch: str
    head_repo: str | None
    author: str
    draft: bool
    clone_url: str

    @classmethod
    def from_api(cls, pull: Mapping[str, Any], repository: Mapping[str, Any]) -> PullRequest:
        head_repo = (pull["head"].get("repo") or {}).get("full_name")
        return cls(
            repo=str(repository["full_name"]),
            number=int(pull["number"]),
            head_sha=str(pull["head"]["sha"]),
            base_sha=str(pull["base"]["sha"]),
            base_ref=str(pull["base"]["ref"]),
            default_branch=str(repository.get("default_branch") or "main"),
            head_repo=str(head_repo) if head_repo else None,
            author=str(pull["user"]["login"]),
            draft=bool(pull.get("draft")),
            clone_url=str(repository.get("clone_url") or ""),
        )

    @property
    def from_fork(self) -> bool:
        return self.head_repo is None or self.head_repo.lower() != self.repo.lower()

    @property
    def short_sha(self) -> str:
        return self.head_sha[:7]


# -------------------------------------------------------------------------- running code


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
) -> RunOutcome:
    """Fetch exactly `sha`, run `retrain.run` if asked, then `evaluate.run` (`repeats` times),
    and read the metrics files it left.

    Only trusted code gets here; it sees the secrets the operator listed in
    MLGATE_RUNNER_SECRETS, redacted from its log.
    """
    allowed = runner.allowed_secrets(settings.runner_secrets, os.environ)
    checkout = runner.checkout_path(settings.data_dir, repo, pr, sha)
    on_step("fetching")
    runner.fetch(clone_url, sha, checkout, token)
    params = dict(retrain.parameters) if retrain is not None else {}

    def execute(argv: Sequence[str], timeout: float) -> runner.RunResult:
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
            argv, checkout, env=env, timeout=timeout, secrets=[token, *allowed.values()]
        )

    logs: list[str] = []
    if retrain is not None:
        if config.retrain.run is None:
            return RunOutcome({}, None, "", failure="`retrain.run` is not configured")
        on_step("retraining")
        result = execute(config.retrain.run, RETRAIN_TIMEOUT)
        logs.append(result.log)
        if failure := _failure(config.retrain.run, result, RETRAIN_TIMEOUT):
            return RunOutcome({}, None, result.log, failure=failure)
    runs: list[Metrics] = []
    evaluate = config.evaluate.run
    repeats = config.evaluate.repeats if evaluate is not None else 1
    for index in range(repeats):
        if evaluate is not None:
            on_step(f"evaluating {index + 1}/{repeats}" if repeats > 1 else "evaluating")
            result = execute(evaluate, config.evaluate.timeout)
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


# -------------------------------------------------------------------------- the whole flow


@dataclass(frozen=True)
class Retrain:
    """A /retrain to run before the evaluation: its validated parameters and who asked."""

    parameters: Mapping[str, str]
    user: str

    def describe(self) -> str:
        given = " ".join(f"{k}={v}" for k, v in self.parameters.items())
        return f"after /retrain by @{self.user}" + (f" with {given}" if given else "")


@dataclass
class Evaluator:
    """Evaluates PRs of one repository for one installation and publishes the results."""

    settings: Settings
    conn: redis.Redis
    gh: GitHubClient
    token: Callable[[], str]
    # Stored with a Semaphore run, so that its pipeline-done notification finds the client.
    installation_id: int | None = None

    def files(self, repo: str) -> RepoFiles:
        return RepoFiles(self.gh, self.conn, repo)

    def checks(self, repo: str) -> Checks:
        return Checks(self.gh, self.conn, repo)

    def evaluate(
        self,
        pr: PullRequest,
        *,
        trusted: Callable[[], bool],
        note: str | None = None,
        forced: bool = False,
        retrain: Retrain | None = None,
        comment_id: int | None = None,
        requested_by: str = "",
    ) -> str:
        """Evaluate `pr` at its head and publish; returns the outcome for logs and tests.

        `trusted` is asked only when the configuration would run the PR's code; a maintainer's
        /evaluate of this very sha also makes it trusted. `forced` (a command) evaluates even
        when nothing under the triggers changed; `retrain` runs `retrain.run` first. Where
        Semaphore runs it (`metrics.source` / `retrain.runner: semaphore`), a workflow is
        started and `SEMAPHORE_STARTED` returned: its pipeline-done notification publishes,
        and reacts on `comment_id` (the command of `requested_by`).
        """
        # Whoever queued this run showed `mlgate/quality` as queued already.
        files, checks = self.files(pr.repo), self.checks(pr.repo)
        try:
            config = load_config(files.read, self._config_ref(pr))
        except RepoConfigError as exc:
            checks.complete(
                CONFIG_CHECK,
                pr.head_sha,
                "failure",
                "Configuration invalid",
                _problems(exc, f"`{CONFIG_PATH}` on `{pr.default_branch}` is invalid"),
            )
            return _config_invalid(checks, pr)
        changed = [f["filename"] for f in self.gh.list_pull_files(pr.repo, pr.number)]
        if CONFIG_PATH in changed:
            self._validate_pr_config(pr, files, checks)
        if pr.draft and not config.triggers.drafts:
            checks.complete(
                QUALITY_CHECK,
                pr.head_sha,
                "skipped",
                "Draft pull request",
                "Draft PRs are evaluated once marked ready for review "
                "(or with `triggers.drafts: true`).",
            )
            return "skipped-draft"
        classified = classify(
            changed, config.triggers, metrics_paths(files.read, config, pr.head_sha)
        )
        if not classified.relevant and not forced:
            checks.complete(
                QUALITY_CHECK,
                pr.head_sha,
                "skipped",
                "Nothing to evaluate",
                f"No changed file matches the triggers ({len(changed)} files changed).",
            )
            return "skipped-irrelevant"

        notes = [note] if note else []
        approval = audit.decision(self.conn, "approval", pr.repo, pr.number, pr.head_sha)
        if approval is not None:
            notes.append(f"@{approval.user} approved running this PR's code at {pr.short_sha}.")
        if retrain is not None:
            notes.append(f"Metrics {retrain.describe()}.")
        if classified.truncated:
            notes.append(
                f"GitHub lists at most {len(changed)} files of a PR; "
                "changes beyond them are not shown."
            )
        needs_code = config.metrics.source != "git" or retrain is not None
        may_run = not needs_code or approval is not None or trusted()
        if retrain is not None and not may_run:
            raise UntrustedCode(f"{pr.repo}#{pr.number} at {pr.short_sha} is not approved")
        kind = _semaphore_kind(config, retrain)
        if kind is not None and may_run:
            return self._start_semaphore(
                pr,
                config,
                checks,
                kind,
                retrain,
                note=note or "",
                comment_id=comment_id,
                requested_by=retrain.user if retrain is not None else requested_by,
            )
        try:
            result = self._compare(pr, config, files, checks, changed, may_run, notes, retrain)
        except (DvcFileError, MetricsFileError, RunnerError) as exc:
            # A broken file or a failed fetch is the PR's result, not a reason to retry.
            result = Evaluation(pr.head_sha, pr.base_sha, base_ref=pr.base_ref, error=str(exc))
        return self._publish(pr, result, checks, neutral=not may_run and result.error is None)

    def _compare(
        self,
        pr: PullRequest,
        config: RepoConfig,
        files: RepoFiles,
        checks: Checks,
        changed: Sequence[str],
        trusted: bool,
        notes: list[str],
        retrain: Retrain | None = None,
    ) -> Evaluation:
        """The shared comparison (`compare`), with the stored baseline, a run where configured,
        and what only the bot has: the trend and notes."""
        measure: Callable[[], RunOutcome] | None = None
        source = config.metrics.source
        stored_base = baseline(self.conn, pr.repo, pr.base_sha)
        if (source == "run" or retrain is not None) and trusted:
            if stored_base is None and source == "run":
                stored_base = self._merge_base_baseline(pr, config, checks)

            def measure() -> RunOutcome:
                return run_evaluation(
                    self.settings,
                    config,
                    repo=pr.repo,
                    pr=pr.number,
                    sha=pr.head_sha,
                    clone_url=pr.clone_url,
                    token=self.token(),
                    on_step=lambda step: checks.start(QUALITY_CHECK, pr.head_sha, step),
                    retrain=retrain,
                )

        elif source != "git":
            notes.append(_waiting_note(source, pr, trusted))
        evaluation = compare(
            files.read,
            config,
            changed,
            pr.base_sha,
            pr.head_sha,
            base_ref=pr.base_ref,
            baseline=stored_base,
            measure=measure,
        )
        if evaluation.error is not None:
            return evaluation  # a failed run shows its error and log, nothing else
        if measure is not None:
            # Steps are worth an API call only where they take long: reading files does not.
            checks.start(QUALITY_CHECK, pr.head_sha, "comparing")
        return replace(evaluation, trend=trend(self.conn, pr.repo), notes=notes)

    def _merge_base_baseline(
        self, pr: PullRequest, config: RepoConfig, checks: Checks
    ) -> Metrics | None:
        """No metrics were recorded for the base: evaluate the merge-base, cached by its sha."""
        merge_base = str(
            self.gh.compare(pr.repo, pr.base_sha, pr.head_sha)["merge_base_commit"]["sha"]
        )
        cached = baseline(self.conn, pr.repo, merge_base)
        if cached is not None:
            return cached
        outcome = run_evaluation(
            self.settings,
            config,
            repo=pr.repo,
            pr=None,
            sha=merge_base,
            clone_url=pr.clone_url,
            token=self.token(),
            on_step=lambda step: checks.start(QUALITY_CHECK, pr.head_sha, f"base: {step}"),
        )
        if outcome.failure is not None:
            log.warning(
                "merge-base evaluation failed: %s", outcome.failure, extra={"repo": pr.repo}
            )
            return None  # the committed metrics of the base stand in
        record_baseline(self.conn, pr.repo, merge_base, outcome.metrics, when=None)
        return outcome.metrics

    def _config_ref(self, pr: PullRequest) -> str:
        # The base sha is the default branch's head when the PR targets it: immutable, cacheable.
        return pr.base_sha if pr.base_ref == pr.default_branch else pr.default_branch

    def _validate_pr_config(self, pr: PullRequest, files: RepoFiles, checks: Checks) -> None:
        text = files.read(CONFIG_PATH, pr.head_sha)
        if text is None:
            checks.complete(
                CONFIG_CHECK,
                pr.head_sha,
                "success",
                "Configuration removed",
                f"This PR removes `{CONFIG_PATH}`; mlgate will use its defaults.",
            )
            return
        try:
            parse_config(text.decode("utf-8", "replace"))
        except RepoConfigError as exc:
            checks.complete(
                CONFIG_CHECK,
                pr.head_sha,
                "failure",
                "Configuration invalid",
                _problems(exc, f"This PR's `{CONFIG_PATH}` is invalid"),
            )
            return
        checks.complete(
            CONFIG_CHECK,
            pr.head_sha,
            "success",
            "Configuration valid",
            f"This PR's `{CONFIG_PATH}` is valid; it takes effect once merged into "
            f"`{pr.default_branch}`.",
        )

    def _publish(
        self,
        pr: PullRequest,
        evaluation: Evaluation,
        checks: Checks,
        *,
        neutral: bool,
        details_url: str | None = None,
    ) -> str:
        if not pr_heads.is_current(self.conn, pr.repo, pr.number, pr.head_sha):
            checks.complete(
                QUALITY_CHECK,
                pr.head_sha,
                "cancelled",
                "Superseded",
                "A newer commit was pushed; its evaluation replaces this one.",
            )
            return "superseded"
        override = audit.decision(self.conn, "override", pr.repo, pr.number, pr.head_sha)
        if override is not None and evaluation.error is None:
            evaluation = replace(evaluation, override=f"@{override.user}: {override.detail}")
        # Kept so that /override can show its decision without running the evaluation again.
        stored_evaluations.save(self.conn, pr.repo, pr.number, pr.head_sha, evaluation, neutral)
        output = render_check_run(evaluation)
        conclusion = "neutral" if neutral else output.conclusion
        history = [e for e in audit.entries(self.conn, pr.repo, AUDIT_SCAN) if e.pr == pr.number]
        shown = replace(evaluation, notes=[*evaluation.notes, *map(_audit_note, history[-10:])])
        sticky_comment.upsert(self.gh, self.conn, pr.repo, pr.number, render_comment(shown))
        checks.complete(
            QUALITY_CHECK,
            pr.head_sha,
            conclusion,
            output.title,
            output.summary,
            annotations=output.annotations,
            details_url=details_url,
        )
        self._deploy_state(pr, conclusion)
        return "error" if evaluation.error is not None else conclusion

    def _deploy_state(self, pr: PullRequest, conclusion: str) -> None:
        """mlgate/deploy follows mlgate/quality of the same sha (DESIGN.md, Deploy states)."""
        deploys.record_gate(self.conn, pr.repo, pr.head_sha, conclusion == "success")
        try:
            config = load_config(self.files(pr.repo).read, self._config_ref(pr))
        except RepoConfigError:
            return  # the PR's mlgate/config says so
        if config.deploy.enabled:
            deploy.publish_check(self.gh, self.conn, pr.repo, pr.number, pr.head_sha, config.deploy)

    # ---------------------------------------------------------------------- Semaphore runs

    def _start_semaphore(
        self,
        pr: PullRequest,
        config: RepoConfig,
        checks: Checks,
        kind: str,
        retrain: Retrain | None,
        *,
        note: str,
        comment_id: int | None,
        requested_by: str,
    ) -> str:
        """Start the evaluation (or retrain) pipeline on Semaphore and leave the check waiting.

        The job ends here; `publish_pipeline` finishes when Semaphore says the pipeline is done.
        """
        pipeline_file = (
            config.retrain.pipeline_file if kind == RETRAIN else config.semaphore.pipeline_file
        )
        project_id = config.semaphore.project_id
        if project_id is None or pipeline_file is None:
            # Config validation requires both for these settings; this guards a default config.
            checks.complete(
                QUALITY_CHECK,
                pr.head_sha,
                "neutral",
                "Semaphore pipeline not configured",
                f"`{CONFIG_PATH}` names no `semaphore.project_id` or pipeline file to run.",
            )
            return SEMAPHORE_UNCONFIGURED
        run_id = uuid.uuid4().hex
        parameters = workflow_parameters(
            retrain.parameters if retrain is not None else {},
            run_id=run_id,
            repo=pr.repo,
            pr=pr.number,
            sha=pr.head_sha,
        )
        with requests.Session() as session:
            try:
                client = SemaphoreClient(
                    self.settings.semaphore_api_url,
                    self.settings.semaphore_api_token,
                    session=session,
                )
            except SettingsError as exc:
                checks.complete(
                    QUALITY_CHECK,
                    pr.head_sha,
                    "neutral",
                    "Semaphore is not configured",
                    f"This repository runs `{pipeline_file}` on Semaphore, but mlgate cannot "
                    f"start it: {exc}. Nothing was run.",
                )
                return SEMAPHORE_UNCONFIGURED
            try:
                started = client.run_workflow(
                    project_id,
                    pull_request_reference(pr.number),
                    pr.head_sha,
                    pipeline_file,
                    parameters,
                )
            except SemaphoreError as exc:
                checks.complete(
                    QUALITY_CHECK,
                    pr.head_sha,
                    "failure",
                    "Semaphore did not start the pipeline",
                    f"Starting `{pipeline_file}` for {pr.short_sha} failed: {exc}",
                )
                return "error"
            url = client.workflow_url(started.workflow_id)
        record_run(
            self.conn,
            SemaphoreRun(
                run_id=run_id,
                kind=kind,
                repo=pr.repo,
                number=pr.number,
                head_sha=pr.head_sha,
                base_sha=pr.base_sha,
                workflow_id=started.workflow_id,
                pipeline_id=started.pipeline_id,
                installation_id=self.installation_id,
                started_at=time.time(),
                pull=asdict(pr),
                parameters=dict(retrain.parameters) if retrain is not None else {},
                requested_by=requested_by,
                comment_id=comment_id,
                note=note,
                workflow_url=url,
            ),
        )
        checks.start(
            QUALITY_CHECK,
            pr.head_sha,
            "waiting for Semaphore",
            summary=f"Waiting for the Semaphore pipeline `{pipeline_file}` (workflow "
            f"`{started.workflow_id}`, run `{run_id}`) of {pr.short_sha}; the result is "
            "published when the pipeline is done.",
            details_url=url,
        )
        log.info(
            "semaphore workflow started",
            extra={"repo": pr.repo, "pr": pr.number, "sha": pr.head_sha, "run_id": run_id},
        )
        return SEMAPHORE_STARTED

    def publish_pipeline(
        self, pr: PullRequest, done: PipelineDone, run: SemaphoreRun | None
    ) -> str:
        """Publish a done pipeline of `pr`'s head: the run mlgate started, else (`run` None) a
        pipeline Semaphore ran by itself. Passed: the metrics uploaded for it against the base;
        failed or stopped: its failed blocks and jobs."""
        files, checks = self.files(pr.repo), self.checks(pr.repo)
        try:
            config = load_config(files.read, self._config_ref(pr))
        except RepoConfigError:
            return _config_invalid(checks, pr)
        notes = [run.note] if run is not None and run.note else []
        approval = audit.decision(self.conn, "approval", pr.repo, pr.number, pr.head_sha)
        if approval is not None:
            notes.append(f"@{approval.user} approved running this PR's code at {pr.short_sha}.")
        if run is not None and run.kind == RETRAIN:
            notes.append(f"Metrics {Retrain(run.parameters, run.requested_by).describe()}.")
        url = run.workflow_url if run is not None else None
        url = url or self._workflow_url(done)
        if not done.passed:
            failure = describe_failure(done.result, self._failed(done))
            link = [f"Semaphore workflow: {url}"] if url else []
            evaluation = Evaluation(
                pr.head_sha, pr.base_sha, base_ref=pr.base_ref, error=failure, notes=notes + link
            )
            return self._publish(pr, evaluation, checks, neutral=False, details_url=url)
        run_id = run.run_id if run is not None else None
        uploaded = uploaded_metrics(self.conn, pr.repo, pr.head_sha, run_id)
        what = f"run `{run_id}`" if run_id else f"any run of {pr.short_sha}"
        upload = UPLOAD_COMMAND.format(repo=pr.repo)

        def measure() -> RunOutcome:
            if not uploaded:
                return RunOutcome(
                    {},
                    None,
                    f"A job of the pipeline uploads its metrics file with:\n{upload}",
                    failure=f"no metrics were uploaded for {what} of the Semaphore pipeline",
                )
            return RunOutcome(uploaded, None, "")

        changed = [f["filename"] for f in self.gh.list_pull_files(pr.repo, pr.number)]
        try:
            evaluation = compare(
                files.read,
                config,
                changed,
                pr.base_sha,
                pr.head_sha,
                base_ref=pr.base_ref,
                baseline=baseline(self.conn, pr.repo, pr.base_sha),
                measure=measure,
            )
        except (DvcFileError, MetricsFileError) as exc:
            evaluation = Evaluation(pr.head_sha, pr.base_sha, base_ref=pr.base_ref, error=str(exc))
        if not uploaded:
            notes.append(
                f"Nothing was uploaded to mlgate for {pr.short_sha}: the pipeline's job runs "
                f"{upload} (README.md, Connecting Semaphore)."
            )
        elif evaluation.error is None:
            evaluation = replace(evaluation, trend=trend(self.conn, pr.repo))
        evaluation = replace(evaluation, notes=notes)
        return self._publish(pr, evaluation, checks, neutral=False, details_url=url)

    def _semaphore(self, session: requests.Session) -> SemaphoreClient | None:
        try:
            return SemaphoreClient(
                self.settings.semaphore_api_url, self.settings.semaphore_api_token, session=session
            )
        except SettingsError:
            return None

    def _workflow_url(self, done: PipelineDone) -> str | None:
        with requests.Session() as session:
            client = self._semaphore(session)
            if client is not None:
                return client.workflow_url(done.workflow_id)
        return fallback_workflow_url(done.organization, done.workflow_id)

    def _failed(self, done: PipelineDone) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Failed blocks and jobs, as the API describes them; the notification's own list when
        the API is not configured or does not answer (the result is known either way)."""
        with requests.Session() as session:
            client = self._semaphore(session)
            if client is None:
                return done.failed
            try:
                pipeline = client.describe_pipeline(done.pipeline_id, detailed=True)
            except SemaphoreError as exc:
                log.warning("describing pipeline failed: %s", exc, extra={"run": done.pipeline_id})
                return done.failed
        return failed_from_pipeline(pipeline) or done.failed

    def republish(self, pr: PullRequest) -> str | None:
        """Show a new decision (an override) on the last evaluation of `pr`'s head, if any."""
        stored = stored_evaluations.load(self.conn, pr.repo, pr.number, pr.head_sha)
        if stored is None:
            return None
        evaluation, neutral = stored
        return self._publish(pr, evaluation, self.checks(pr.repo), neutral=neutral)

    def record_push_baseline(
        self, repo: str, sha: str, clone_url: str, when: float, paths: Sequence[str] | None
    ) -> Metrics | None:
        """Metrics of a default-branch commit: read (git) or evaluated (run) and stored.

        `paths` (what the push changed, when known) that touch nothing relevant record nothing.
        """
        files = self.files(repo)
        config = load_config(files.read, sha)
        if paths is not None:
            classified = classify(paths, config.triggers, metrics_paths(files.read, config, sha))
            if not (classified.relevant or classified.config):
                return None
        if config.metrics.source == "run":
            outcome = run_evaluation(
                self.settings,
                config,
                repo=repo,
                pr=None,
                sha=sha,
                clone_url=clone_url,
                token=self.token(),
            )
            if outcome.failure is not None:
                log.warning("baseline evaluation failed: %s", outcome.failure, extra={"repo": repo})
                return None
            metrics = outcome.metrics
        else:
            metrics = read_metrics(
                lambda p: files.read(p, sha), metrics_paths(files.read, config, sha)
            )
        record_baseline(self.conn, repo, sha, metrics, when)
        return metrics


def _config_invalid(checks: Checks, pr: PullRequest) -> str:
    """`mlgate/quality` when the default branch's configuration is broken (DESIGN.md)."""
    checks.complete(
        QUALITY_CHECK,
        pr.head_sha,
        "neutral",
        "Configuration invalid",
        "configuration invalid, see mlgate/config",
    )
    return "config-invalid"


def _audit_note(entry: audit.Entry) -> str:
    """One line of the PR's audit trail, as the sticky comment lists it."""
    detail = f": {entry.detail}" if entry.detail else ""
    return f"Audit: {entry.kind} by @{entry.user} on {entry.sha[:7]}{detail}"


def _problems(exc: RepoConfigError, heading: str) -> str:
    lines = "\n".join(f"- `{p}`" for p in exc.problems)
    return f"{heading}:\n\n{lines}\n"


def author_trusted(gh: GitHubClient, pr: PullRequest) -> bool:
    """A PR may run its code with the bot's credentials only from the base repository and by
    an author with write permission (never inferred from author_association)."""
    if pr.from_fork:
        return False
    return at_least(level(gh.collaborator_permission(pr.repo, pr.author)), "write")


def _semaphore_kind(config: RepoConfig, retrain: Retrain | None) -> str | None:
    """`retrain` or `evaluate` when that run happens on Semaphore, else None."""
    if retrain is not None:
        return RETRAIN if config.retrain.runner == "semaphore" else None
    return "evaluate" if config.metrics.source == "semaphore" else None


def _waiting_note(source: str, pr: PullRequest, trusted: bool) -> str:
    if not trusted:
        return (
            f"Evaluation waits for a maintainer's `/evaluate` on {pr.short_sha}: this PR's "
            "code does not run until then. The comparison shows its committed metrics files."
        )
    return f"`metrics.source: {source}` runs on Semaphore; the comparison shows committed files."
