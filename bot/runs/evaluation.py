"""Evaluating a PR: reads, runs and compares; returns the Publication its decisions make."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cache, cached_property

import redis

from bot.core.changes import classify
from bot.core.comparison import (
    Metrics,
    RunOutcome,
    compare,
    data_files,
    metrics_paths,
    read_metrics,
)
from bot.core.config import CONFIG_PATH, RepoConfig, load_config
from bot.core.evaluation_result import Evaluation
from bot.core.permissions import at_least, level
from bot.core.pr_facts import PullRequest, Retrain
from bot.errors import (
    DvcFileError,
    MetricsFileError,
    RepoConfigError,
    RunnerError,
    SandboxUnavailable,
)
from bot.github.github_client import GitHubClient
from bot.github.repo_files import RepoFiles
from bot.runs import evaluation_decisions as decide
from bot.runs import leaderboard, semaphore_evaluation
from bot.runs.check_runs import QUALITY_CHECK
from bot.runs.head_records import HeadRecords
from bot.runs.local_evaluation import run_evaluation
from bot.runs.output_commits import OutputCapture
from bot.runs.publication import Publication, step
from bot.runs.publisher import Publisher
from bot.semaphore.pipelines import PipelineDone
from bot.settings import Settings
from bot.state import audit, retrain_lines, stored_evaluations
from bot.state.baselines import baseline, record_baseline, trend
from bot.state.semaphore_runs import SemaphoreRun

log = logging.getLogger(__name__)


@dataclass
class Evaluator:
    """Evaluates PRs of one repository for one installation; returns what to publish."""

    settings: Settings
    conn: redis.Redis
    gh: GitHubClient
    # A token for fetching a checkout: GitHubApp.checkout_token, which reads one repository.
    token: Callable[[], str]
    # Stored with a Semaphore run, so that its pipeline-done notification finds the client.
    installation_id: int | None = None

    @cached_property
    def publisher(self) -> Publisher:
        """Shows the steps of a long run; everything else is returned, never published here."""
        return Publisher(self.gh, self.conn)

    def files(self, repo: str) -> RepoFiles:
        return RepoFiles(self.gh, self.conn, repo)

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
    ) -> Publication:
        """What evaluating `pr` at its head publishes; its outcome names the result.

        `trusted` is asked only when the configuration would run the PR's code; a maintainer's
        /evaluate of this very sha also makes it trusted. `forced` (a command) evaluates even
        when nothing under the triggers changed; `retrain` runs `retrain.run` first. Where
        Semaphore runs it (`metrics.source` / `retrain.runner: semaphore`), a workflow is
        started and the outcome is SEMAPHORE_STARTED: its pipeline-done notification
        publishes, and reacts on `comment_id` (the command of `requested_by`); otherwise the
        command gets its reaction with this publication.
        """
        shown = self._course(pr, trusted, note, forced, retrain, comment_id, requested_by)
        return decide.reacted(shown, comment_id)

    def _course(
        self,
        pr: PullRequest,
        trusted: Callable[[], bool],
        note: str | None,
        forced: bool,
        retrain: Retrain | None,
        comment_id: int | None,
        requested_by: str,
    ) -> Publication:
        # Whoever queued this run showed `mlgate/quality` as queued already.
        files = self.files(pr.repo)
        try:
            config = load_config(files.read, pr.config_ref)
        except RepoConfigError as exc:
            return decide.config_invalid(pr, exc.problems)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Which files the head changed since its merge base, asked beside the PR's list:
            # the head's other files are then read at the merge base, already cached.
            following = (
                pool.submit(files.follow, pr.base_sha, pr.head_sha)
                if decide.reads_head(pr, config)
                else None
            )
            changed = [f["filename"] for f in self.gh.list_pull_files(pr.repo, pr.number)]
        if following is not None:
            following.result()
        first = Publication(pr.repo, pr.number)
        if CONFIG_PATH in changed:
            own = files.read(CONFIG_PATH, pr.head_sha)
            first = first.with_checks([decide.pr_config_check(pr, own)])
        course, metrics_at = self._plan(pr, config, files, changed, forced, retrain, note, trusted)
        if course.done is not None:
            return first.then(course.done)
        if course.semaphore is not None:
            started = semaphore_evaluation.start(
                self.settings,
                self.conn,
                pr,
                config,
                course.semaphore,
                retrain,
                installation_id=self.installation_id,
                note=note or "",
                comment_id=comment_id,
                requested_by=retrain.user if retrain is not None else requested_by,
            )
            return first.then(started)
        notes = list(course.notes)
        try:
            result = self._compare(
                pr, config, files, changed, course.may_run, notes, retrain, metrics_at
            )
        except SandboxUnavailable as exc:
            # The worker's fault, not the PR's: the operator installs bubblewrap, then re-runs.
            log.warning("no sandbox: %s", exc, extra={"repo": pr.repo, "pr": pr.number})
            return first.then(decide.sandbox_unavailable(pr, str(exc)))
        except (DvcFileError, MetricsFileError, RunnerError) as exc:
            # A broken file or a failed fetch is the PR's result, not a reason to retry.
            result = Evaluation(pr.head_sha, pr.base_sha, base_ref=pr.base_ref, error=str(exc))
        neutral = not course.may_run and result.error is None
        return first.then(self._result(pr, result, neutral=neutral))

    def evaluate_candidate(
        self,
        pr: PullRequest,
        retrain: Retrain,
        *,
        trusted: Callable[[], bool],
    ) -> tuple[Evaluation, RepoConfig | None, OutputCapture]:
        """One `/retrain` matrix candidate: the same course as a `/retrain` of the head (the
        sandboxed retrain with its parameters, then the evaluation), and the capture of the
        `retrain.outputs` it changed. Nothing is published: the head's own evaluation stays what
        `mlgate/quality` shows; the candidate's result goes to the leaderboard."""
        files = self.files(pr.repo)

        def failed(why: str) -> Evaluation:
            return Evaluation(pr.head_sha, pr.base_sha, base_ref=pr.base_ref, error=why)

        try:
            config = load_config(files.read, pr.config_ref)
        except RepoConfigError:
            invalid = "`.github/mlgate.yml` on the default branch is invalid"
            return failed(invalid), None, OutputCapture(())
        capture = OutputCapture(tuple(config.retrain.outputs))
        changed = [f["filename"] for f in self.gh.list_pull_files(pr.repo, pr.number)]
        course, metrics_at = self._plan(pr, config, files, changed, True, retrain, None, trusted)
        if course.done is not None:
            why = "not run: approve the head's code with /evaluate, then retrain"
            return failed(why), config, capture
        if course.semaphore is not None:
            why = "the experiment matrix runs with `retrain.runner: local` only"
            return failed(why), config, capture
        try:
            result = self._compare(
                pr, config, files, changed, course.may_run, [], retrain, metrics_at, capture
            )
        except (SandboxUnavailable, DvcFileError, MetricsFileError, RunnerError) as exc:
            return failed(str(exc)), config, capture
        return result, config, capture

    def _plan(
        self,
        pr: PullRequest,
        config: RepoConfig,
        files: RepoFiles,
        changed: Sequence[str],
        forced: bool,
        retrain: Retrain | None,
        note: str | None,
        trusted: Callable[[], bool],
    ) -> tuple[decide.Plan, Callable[[str], Sequence[str]]]:
        """The run's course (bot/runs/evaluation_decisions.py `plan`), and the metrics paths
        of a commit, read once per sha."""
        approval = audit.decision(self.conn, "approval", pr.repo, pr.number, pr.head_sha)

        @cache
        def metrics_at(sha: str) -> tuple[str, ...]:
            # Asked to classify the change and again to prefetch: the DVC files parse once.
            return tuple(metrics_paths(files.read, config, sha))

        course = decide.plan(
            pr,
            config,
            changed,
            classified=lambda: classify(changed, config.triggers, metrics_at(pr.head_sha)),
            forced=forced,
            approval=approval,
            retrain=retrain,
            note=note,
            trusted=trusted,
        )
        return course, metrics_at

    def _step(self, pr: PullRequest, current: str) -> None:
        self.publisher.show(pr.repo, step(QUALITY_CHECK, pr.head_sha, current))

    def _compare(
        self,
        pr: PullRequest,
        config: RepoConfig,
        files: RepoFiles,
        changed: Sequence[str],
        trusted: bool,
        notes: list[str],
        retrain: Retrain | None,
        metrics_at: Callable[[str], Sequence[str]],
        capture: OutputCapture | None = None,
    ) -> Evaluation:
        """The shared comparison (`compare`), with the stored baseline, a run where configured,
        and what only the bot has: the trend and notes."""
        measure: Callable[[], RunOutcome] | None = None
        source = config.metrics.source
        # A matrix candidate (`capture`) shows no steps: mlgate/quality is the head's own.
        shows_steps = capture is None

        def show(current: str) -> None:
            if shows_steps:
                self._step(pr, current)

        stored_base = baseline(self.conn, pr.repo, pr.base_sha)
        if (source == "run" or retrain is not None) and trusted:
            if stored_base is None and source == "run":
                stored_base = self._merge_base_baseline(pr, config, shows_steps)

            def measure() -> RunOutcome:
                return run_evaluation(
                    self.settings,
                    config,
                    repo=pr.repo,
                    pr=pr.number,
                    sha=pr.head_sha,
                    clone_url=pr.clone_url,
                    token=self.token(),
                    on_step=show,
                    retrain=retrain,
                    capture=capture,
                )

        elif source != "git":
            notes.append(decide.waiting_note(source, pr, trusted))
        files.prefetch(_certain_reads(metrics_at, changed, pr, base=stored_base is None))
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
            show("comparing")
        # The comparison's own notes (metrics only in DVC's cache, a gated metric found
        # nowhere) come first, then the bot's.
        shown = [*evaluation.notes, *notes]
        return replace(evaluation, trend=trend(self.conn, pr.repo), notes=shown)

    def _merge_base_baseline(
        self, pr: PullRequest, config: RepoConfig, shows_steps: bool = True
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
            on_step=lambda current: self._step(pr, f"base: {current}") if shows_steps else None,
        )
        if outcome.failure is not None:
            log.warning(
                "merge-base evaluation failed: %s", outcome.failure, extra={"repo": pr.repo}
            )
            return None  # the committed metrics of the base stand in
        record_baseline(self.conn, pr.repo, merge_base, outcome.metrics, when=None)
        return outcome.metrics

    def _result(
        self,
        pr: PullRequest,
        evaluation: Evaluation,
        *,
        neutral: bool,
        details_url: str | None = None,
        records: HeadRecords | None = None,
    ) -> Publication:
        """What an evaluation of `pr`'s head publishes, with what is recorded about the head:
        whether it is still current, an override, the audit trail and the deploy state."""
        records = records or HeadRecords(self.conn, pr.repo, pr.number)
        head = records.about(pr.head_sha)
        deploy = None
        if head.current:
            try:
                config = load_config(self.files(pr.repo).read, pr.config_ref)
            except RepoConfigError:
                pass  # the PR's mlgate/config says so; mlgate/deploy stays as it is
            else:
                deploy = config.deploy if config.deploy.enabled else None
                # The PR's `/retrain` matrix, as it stands now, is shown with every report.
                evaluation = leaderboard.with_board(self.conn, pr, config, evaluation)
        return decide.published(
            pr, evaluation, head, neutral=neutral, details_url=details_url, deploy=deploy
        )

    def publish_pipeline(
        self, pr: PullRequest, done: PipelineDone, run: SemaphoreRun | None
    ) -> Publication:
        """What a done pipeline of `pr`'s head publishes (semaphore_evaluation.py), with the
        reaction of the command that started the run."""
        files = self.files(pr.repo)
        comment_id = run.comment_id if run is not None else None
        try:
            config = load_config(files.read, pr.config_ref)
        except RepoConfigError:
            return decide.reacted(decide.quality_config_invalid(pr), comment_id)
        evaluation, url = semaphore_evaluation.pipeline_evaluation(
            self.settings, self.conn, self.gh, files, pr, config, done, run
        )
        shown = self._result(pr, evaluation, neutral=False, details_url=url)
        return decide.reacted(shown, comment_id)

    def republish(self, pr: PullRequest, records: HeadRecords | None = None) -> Publication | None:
        """The last evaluation of `pr`'s head shown again with a new decision (an override, a
        deploy approval in its audit trail); None if nothing was evaluated there yet."""
        stored = stored_evaluations.load(self.conn, pr.repo, pr.number, pr.head_sha)
        if stored is None:
            return None
        evaluation, neutral = stored
        return self._result(pr, evaluation, neutral=neutral, records=records)

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
            try:
                outcome = run_evaluation(
                    self.settings,
                    config,
                    repo=repo,
                    pr=None,
                    sha=sha,
                    clone_url=clone_url,
                    token=self.token(),
                )
            except SandboxUnavailable as exc:
                log.warning("baseline not evaluated: %s", exc, extra={"repo": repo})
                return None
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


def _certain_reads(
    metrics_at: Callable[[str], Sequence[str]],
    changed: Sequence[str],
    pr: PullRequest,
    *,
    base: bool,
) -> list[tuple[str, str]]:
    """Files `compare` reads at the base and the head whatever they hold, so that they can be
    read at once: the changed DVC and params files on both sides, the metrics files at the
    head (and at the base without a stored baseline). A DVC file that does not load leaves
    its metrics out, for `compare` to say so in its own words."""
    # As `data_and_params` (bot/core/comparison.py) picks them; a file left out is read later.
    wanted = [*data_files(changed), *(p for p in changed if posixpath.basename(p) == "params.yaml")]
    reads = [(path, sha) for sha in (pr.base_sha, pr.head_sha) for path in wanted]
    for sha in (pr.head_sha, pr.base_sha) if base else (pr.head_sha,):
        try:
            reads.extend((path, sha) for path in metrics_at(sha))
        except (DvcFileError, MetricsFileError):
            pass
    return reads


def author_trusted(gh: GitHubClient, pr: PullRequest, conn: redis.Redis | None = None) -> bool:
    """A PR may run its code with the bot's credentials only from the base repository and by
    an author with write permission (never inferred from author_association), or when it is
    mlgate's own retrain PR at the commit mlgate wrote (`own_retrain`, given `conn`)."""
    if pr.from_fork:
        return False
    if conn is not None and own_retrain(gh, conn, pr):
        return True
    return at_least(level(gh.collaborator_permission(pr.repo, pr.author)), "write")


def own_retrain(gh: GitHubClient, conn: redis.Redis, pr: PullRequest) -> bool:
    """Whether `pr` is the retrain PR this App opened, at the very head its retrain line holds:
    a default-branch commit plus the files under `retrain.outputs` (retrain_loop.py), whose code
    is the default branch's. Another bot's PR, or a commit pushed on top, is judged as any PR."""
    if pr.from_fork or not pr.author.endswith("[bot]"):
        return False
    line = retrain_lines.line(conn, pr.repo)
    if line is None or line.head_sha != pr.head_sha:
        return False
    # The App's own login, `<slug>[bot]` from GET /app: never a suffix or a name pattern.
    return pr.author == gh.bot_login()
