"""The retrain loop: retrain a default-branch commit, commit its changed outputs, open the PR."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis
import requests

from bot.core.changes import matches
from bot.core.config import RepoConfig, load_config
from bot.core.markdown_escape import code
from bot.core.retrain_outputs import (
    MAX_OUTPUT_FILES,
    REGULAR,
    BlobFile,
    ChangedFile,
    OutputChange,
    PushedFile,
    blob_sha,
    merges_own_retrain,
    output_changes,
)
from bot.errors import (
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubValidationFailed,
    MlgateError,
    RepoConfigError,
    RunnerError,
    SemaphoreError,
    SettingsError,
)
from bot.github.github_client import GitHubClient, JSONDict
from bot.github.repo_files import RepoFiles
from bot.runs import retrain_decisions as decide
from bot.runs import runner
from bot.runs.local_evaluation import RETRAIN_TIMEOUT
from bot.runs.output_commits import commit_listing, tree_entries, work_tree_outputs
from bot.runs.publication import Publication
from bot.runs.publisher import Publisher
from bot.runs.retrain_decisions import RetrainRequest
from bot.semaphore.pipelines import PipelineDone, describe_failure, workflow_parameters
from bot.semaphore.semaphore_client import SemaphoreClient, branch_reference
from bot.settings import Settings
from bot.state import default_heads, queues, retrain_lines, retrain_pulls, semaphore_runs
from bot.state.queues import RUN_JOB_TIMEOUT
from bot.state.retrain_lines import RetrainLine
from bot.state.retrain_pulls import RetrainPull
from bot.state.semaphore_runs import SemaphoreRun

log = logging.getLogger(__name__)

RETRAIN_JOB = "workers.jobs.retrain_default_branch"


def job_kind(trigger: str, occasion: str = "") -> str:
    """The rq kind of a retrain: one job per (repository, commit, trigger, occasion)."""
    if not occasion:
        return f"retrain-{trigger}"
    # rq ids allow only [A-Za-z0-9_-]: the occasion (a fire time, a breach) is hashed.
    return f"retrain-{trigger}-{hashlib.sha1(occasion.encode()).hexdigest()[:12]}"


def start_retrain(
    conn: redis.Redis,
    repo: str,
    trigger: str,
    *,
    sha: str | None = None,
    occasion: str = "",
    user: str = "",
    data_paths: Sequence[str] = (),
    schedule: str = "",
    supersedes: str | None = None,
) -> bool:
    """Queue a retrain of `repo`'s default branch at `sha` (default: its head as the last push
    showed it) on `runs`; False when the same retrain is already queued or running.

    `trigger` is a key of retrain_decisions.TRIGGERS. A retrain of one (commit, trigger,
    occasion) runs once, however often it is asked for; `supersedes` names a commit whose
    queued retrain of the same trigger this one makes moot. Raises MlgateError when no push
    to the default branch was seen yet (nothing says where it is or how to fetch it).
    """
    head = default_heads.head(conn, repo)
    if head is None:
        raise MlgateError(
            f"no push to the default branch of {repo} was seen yet: mlgate retrains the "
            "default branch from its last push; push to it (or redeliver that push) first"
        )
    request = RetrainRequest(
        repo=repo,
        sha=sha or head.sha,
        trigger=trigger,
        installation_id=head.installation_id,
        default_branch=head.branch,
        occasion=occasion,
        clone_url=head.clone_url,
        html_url=head.html_url,
        user=user,
        schedule=schedule,
        data_paths=tuple(data_paths),
    )
    kind = job_kind(trigger, occasion)
    if supersedes and supersedes != request.sha:
        queues.cancel_run(conn, kind, repo, None, supersedes)
    job: dict[str, Any] = asdict(request) | {"data_paths": list(request.data_paths)}
    return queues.enqueue_run(conn, kind, RETRAIN_JOB, repo, None, request.sha, request=job)


@dataclass(frozen=True)
class RetrainRun:
    """How the retrain in the sandbox went: a failure, or the outputs it changed."""

    failure: str | None = None
    log: str = ""
    changes: tuple[OutputChange, ...] = ()
    base_tree: str = ""
    own_merge: bool = False


@dataclass(frozen=True)
class OpenLine:
    """The open retrain PR on GitHub: its number, branch and head."""

    number: int
    branch: str
    head_sha: str
    title: str = ""


@dataclass
class RetrainLoop:
    """Retrains one repository's default branch for one installation and publishes it."""

    settings: Settings
    conn: redis.Redis
    gh: GitHubClient
    token: Callable[[], str]

    def run(self, request: RetrainRequest) -> str:
        """Retrain, then open or move the retrain PR (or say why not); returns the outcome.

        One retrain per repository at a time (its line lock); a retrain that already ended
        ends at once as ALREADY_DONE, so that duplicate webhooks and queued twins change
        nothing. A job that fails on the way (GitHub down) ends nothing: run again, it finds
        what it wrote and completes it, never opening a second PR.
        """
        with retrain_lines.line_lock(self.conn, request.repo, RUN_JOB_TIMEOUT):
            done = retrain_lines.outcome(
                self.conn, request.repo, request.sha, request.trigger, request.occasion
            )
            if done is not None:
                return decide.ALREADY_DONE
            publication = self.course(request)
            outcome = Publisher(self.gh, self.conn).publish(publication)
            retrain_lines.finish(
                self.conn, request.repo, request.sha, request.trigger, request.occasion, outcome
            )
        log.info(
            "retrain %s",
            outcome,
            extra={"repo": request.repo, "sha": request.sha, "trigger": request.trigger},
        )
        return outcome

    def course(self, request: RetrainRequest) -> Publication:
        """What the retrain of `request` publishes; the branch and PR it writes on the way."""
        try:
            config = load_config(RepoFiles(self.gh, self.conn, request.repo).read, request.sha)
        except RepoConfigError as exc:
            problems = "; ".join(exc.problems[:3])
            return decide.failed(request, f"`.github/mlgate.yml` is invalid: {problems}", "")
        on_semaphore = config.retrain.runner == "semaphore"
        if not on_semaphore and config.retrain.run is None:
            return decide.failed(request, "`retrain.run` is not configured", "")
        saved = retrain_lines.line(self.conn, request.repo)
        newer = self.newer_retrained(request, saved)
        if newer is not None:
            return decide.superseded(request, newer)
        if on_semaphore:
            return self.start_pipeline(request, config, saved)
        done = self.retrain(request, config, saved)
        if done.own_merge:
            return Publication(request.repo, None, decide.OWN_MERGE)
        if done.failure is not None:
            return decide.failed(request, done.failure, done.log)
        if not done.changes:
            return decide.unchanged(request)
        try:
            return self.publish_outputs(request, done, saved)
        except GitHubError as exc:
            if exc.status not in (403, 422) or isinstance(exc, GitHubRateLimited):
                raise  # GitHub down or busy: the job fails, and run again it completes
            # Refused for good: asking again would be refused again.
            why = f"GitHub refused to write the retrain branch or PR ({exc})"
            if exc.status == 403:
                why += "; the App needs the repository permission Contents: read & write"
            return decide.failed(request, why, done.log)

    def newer_retrained(self, request: RetrainRequest, saved: RetrainLine | None) -> str | None:
        """The default branch's head when the retrain line already holds it and `request` is
        of an older commit: moving the PR back to the older commit would undo that."""
        head = default_heads.head(self.conn, request.repo)
        if (
            saved is not None
            and head is not None
            and head.sha != request.sha
            and saved.base_sha == head.sha
        ):
            return head.sha
        return None

    # -- the retrain in the sandbox -----------------------------------------------------------

    def retrain(
        self, request: RetrainRequest, config: RepoConfig, saved: RetrainLine | None
    ) -> RetrainRun:
        """Fetch the commit, run `retrain.run` on it in the sandbox and read what it changed."""
        argv = config.retrain.run
        assert argv is not None, "checked by the caller"
        token = self.token()
        allowed = runner.allowed_secrets(self.settings.runner_secrets, os.environ)
        checkout = runner.checkout_path(self.settings.data_dir, request.repo, None, request.sha)
        try:
            try:
                runner.fetch(request.clone_url, request.sha, checkout, token)
                # Read from git before the run: afterwards .git is the run's to tamper with.
                base_tree, at_commit = commit_listing(checkout, request.sha)
            except RunnerError as exc:
                return RetrainRun(failure=str(exc))
            if (
                request.trigger == "data"
                and saved is not None
                and merges_own_retrain(request.data_paths, saved.files, at_commit)
            ):
                return RetrainRun(own_merge=True)
            env = runner.run_environment(
                params={},
                run_id=uuid.uuid4().hex,
                repo=request.repo,
                pr=None,
                sha=request.sha,
                allowed_secrets=allowed,
                home=runner.fresh_home(checkout),
            )
            try:
                result = runner.run(
                    argv,
                    checkout,
                    env=env,
                    timeout=RETRAIN_TIMEOUT,
                    secrets=[token, *allowed.values()],
                    network=config.retrain.network,
                    memory=config.retrain.memory,
                    data_dir=self.settings.data_dir,
                )
            except RunnerError as exc:
                return RetrainRun(failure=str(exc))
            command = " ".join(argv)
            if result.timed_out:
                return RetrainRun(f"`{command}` timed out after {RETRAIN_TIMEOUT} s", result.log)
            if result.exit_code != 0:
                return RetrainRun(f"`{command}` exited with {result.exit_code}", result.log)
            outputs = config.retrain.outputs
            after, problem = work_tree_outputs(checkout, outputs)
            if problem is not None:
                return RetrainRun(problem, result.log)
            before = {p: f for p, f in at_commit.items() if matches(p, outputs)}
            changes = output_changes(before, after, outputs)
            return RetrainRun(log=result.log, changes=changes, base_tree=base_tree)
        finally:
            runner.remove_checkout(checkout)

    # -- the branch and the PR ------------------------------------------------------------------

    def publish_outputs(
        self, request: RetrainRequest, done: RetrainRun, saved: RetrainLine | None
    ) -> Publication:
        """Commit the changed outputs on the retrained commit and open the retrain PR, or move
        the open one to it. Each write is one a rerun finds and completes."""
        repo, changes = request.repo, done.changes
        tree = self.gh.create_tree(repo, tree_entries(self.gh, repo, changes), done.base_tree)
        found = self.open_line(request, saved)
        written = (
            saved is not None
            and saved.base_sha == request.sha
            and saved.tree_sha == tree
            and (found is None or found.branch == saved.branch)
        )
        if written:
            # An earlier attempt of this very retrain committed it: reuse what it wrote.
            assert saved is not None
            line = saved
            if found is None or found.head_sha != saved.head_sha:
                self.point(repo, saved.branch, saved.head_sha, found is not None)
        else:
            message = decide.commit_message(request, changes)
            commit = self.gh.create_git_commit(repo, message, tree, [request.sha])
            branch = found.branch if found is not None else decide.branch_name(request.sha)
            files = {c.path: c.sha for c in changes}
            number = found.number if found is not None else None
            line = RetrainLine(branch, request.sha, commit, tree, number, files)
            # Saved before the branch moves: the PR's evaluation trusts that head by it.
            retrain_lines.save_line(self.conn, repo, line)
            self.point(repo, branch, commit, found is not None)
            if found is not None:
                self.listed(request, found.number, found.title, line)
                return decide.moved(request, found.number, changes)
        if found is not None and line.number == found.number:
            self.listed(request, found.number, found.title, line)
            return decide.already_published(request, found.number)
        # A new PR, or the one an earlier attempt opened before it could note its number.
        number = found.number if found is not None else self.open_pull(request, line, changes)
        self.gh.add_labels(repo, number, [decide.RETRAIN_LABEL])
        retrain_lines.save_line(self.conn, repo, replace(line, number=number))
        self.listed(request, number, found.title if found is not None else "", line)
        return decide.opened(request, number, changes)

    def listed(self, request: RetrainRequest, number: int, title: str, line: RetrainLine) -> None:
        """The dashboard's open retrain PRs show this one at its new head."""
        shown = RetrainPull(
            number, title or decide.title(request), line.branch, line.head_sha, time.time()
        )
        retrain_pulls.record_open(self.conn, request.repo, shown)

    def open_line(self, request: RetrainRequest, saved: RetrainLine | None) -> OpenLine | None:
        """The open retrain PR: the saved one if still open, else any open PR of a
        `mlgate/retrain-` branch of this repository into the default branch (state lost)."""
        if saved is not None and saved.number is not None:
            try:
                pull = self.gh.get_pull(request.repo, saved.number)
            except GitHubNotFound:
                pull = {}
            if pull.get("state") == "open" and _line_head(pull, request.repo) == saved.branch:
                head, title = str(pull["head"]["sha"]), str(pull.get("title") or "")
                return OpenLine(saved.number, saved.branch, head, title)
        for pull in self.gh.list_pulls(request.repo, state="open", base=request.default_branch):
            branch = _line_head(pull, request.repo)
            if branch is not None and decide.is_retrain_branch(branch):
                head = str(pull["head"]["sha"])
                return OpenLine(int(pull["number"]), branch, head, str(pull.get("title") or ""))
        return None

    def point(self, repo: str, branch: str, sha: str, exists: bool) -> None:
        """Point `branch` at `sha`: moved with force when the line has it, else created (or
        moved, if an earlier retrain of this commit left it behind)."""
        ref = f"refs/heads/{branch}"
        if not exists:
            try:
                self.gh.create_ref(repo, ref, sha)
                return
            except GitHubValidationFailed:
                pass  # "Reference already exists"
        self.gh.update_ref(repo, ref, sha, force=True)

    def open_pull(
        self, request: RetrainRequest, line: RetrainLine, changes: Sequence[ChangedFile]
    ) -> int:
        branch = line.branch
        try:
            pull = self.gh.create_pull(
                request.repo,
                title=decide.title(request),
                head=branch,
                base=request.default_branch,
                body=decide.pr_body(request, changes),
            )
        except GitHubValidationFailed:
            # "A pull request already exists": an earlier attempt opened it.
            for existing in self.gh.list_pulls(
                request.repo, state="open", base=request.default_branch
            ):
                if _line_head(existing, request.repo) == branch:
                    return int(existing["number"])
            raise
        return int(pull["number"])

    # -- runner: semaphore ----------------------------------------------------------------------

    def start_pipeline(
        self, request: RetrainRequest, config: RepoConfig, saved: RetrainLine | None
    ) -> Publication:
        """Start the retrain pipeline on the retrained commit with MLGATE_RETRAIN_BRANCH; it
        pushes that branch itself, and its done notification (or the poll) ends the retrain
        in `pipeline_done`."""
        project_id, pipeline_file = config.semaphore.project_id, config.retrain.pipeline_file
        if project_id is None or pipeline_file is None:
            why = "retrain.runner: semaphore needs semaphore.project_id and retrain.pipeline_file"
            return decide.failed(request, why, "")
        if request.trigger == "data" and saved is not None:
            files = RepoFiles(self.gh, self.conn, request.repo)
            at_commit = {}
            for path in request.data_paths:
                content = files.read(path, request.sha)
                if content is not None:
                    at_commit[path] = BlobFile(REGULAR, blob_sha(content))
            if merges_own_retrain(request.data_paths, saved.files, at_commit):
                return Publication(request.repo, None, decide.OWN_MERGE)
        run_id = uuid.uuid4().hex
        branch = decide.branch_name(request.sha)
        parameters = workflow_parameters(
            {}, run_id=run_id, repo=request.repo, pr=None, sha=request.sha
        ) | {decide.BRANCH_VARIABLE: branch}
        with requests.Session() as session:
            try:
                client = SemaphoreClient(
                    self.settings.semaphore_api_url,
                    self.settings.semaphore_api_token,
                    session=session,
                )
                started = client.run_workflow(
                    project_id,
                    branch_reference(request.default_branch),
                    request.sha,
                    pipeline_file,
                    parameters,
                )
            except SettingsError as exc:
                return decide.failed(request, f"mlgate cannot start Semaphore: {exc}", "")
            except SemaphoreError as exc:
                why = f"Semaphore did not start `{pipeline_file}`: {exc}"
                return decide.failed(request, why, "")
            url = client.workflow_url(started.workflow_id)
        job: dict[str, Any] = asdict(request) | {"data_paths": list(request.data_paths)}
        semaphore_runs.record_run(
            self.conn,
            SemaphoreRun(
                run_id=run_id,
                kind=decide.LOOP_RUN,
                repo=request.repo,
                number=0,
                head_sha=request.sha,
                base_sha=request.sha,
                workflow_id=started.workflow_id,
                pipeline_id=started.pipeline_id,
                installation_id=request.installation_id,
                started_at=time.time(),
                workflow_url=url,
                retrain=job,
            ),
        )
        return decide.pipeline_started(request, pipeline_file, started.workflow_id)

    def pipeline_done(
        self, request: RetrainRequest, done: PipelineDone, run: SemaphoreRun
    ) -> str | None:
        """End a retrain whose pipeline is done: open or move the retrain PR to the branch
        it pushed, or say why not. None when this pipeline was published already (the
        notification and the poll, or a duplicate notification)."""
        with retrain_lines.line_lock(self.conn, request.repo, RUN_JOB_TIMEOUT):
            if not semaphore_runs.claim(self.conn, done.pipeline_id):
                return None
            try:
                outcome = Publisher(self.gh, self.conn).publish(
                    self.pipeline_course(request, done, run)
                )
            except BaseException:
                semaphore_runs.release(self.conn, done.pipeline_id)  # the retry publishes
                raise
        log.info(
            "retrain pipeline %s",
            outcome,
            extra={"repo": request.repo, "sha": request.sha, "pipeline_id": done.pipeline_id},
        )
        return outcome

    def pipeline_course(
        self, request: RetrainRequest, done: PipelineDone, run: SemaphoreRun
    ) -> Publication:
        where = f"Semaphore workflow: {run.workflow_url or run.workflow_id}\n"
        if not done.passed:
            return decide.failed(request, describe_failure(done.result, done.failed), where)
        saved = retrain_lines.line(self.conn, request.repo)
        newer = self.newer_retrained(request, saved)
        if newer is not None:
            return decide.superseded(request, newer)
        branch = decide.branch_name(request.sha)
        head = self.gh.branch_head(request.repo, branch)
        if head is None or head == request.sha:
            return decide.nothing_pushed(request, branch)
        try:
            config = load_config(RepoFiles(self.gh, self.conn, request.repo).read, request.sha)
        except RepoConfigError as exc:
            problems = "; ".join(exc.problems[:3])
            return decide.failed(request, f"`.github/mlgate.yml` is invalid: {problems}", where)
        compared = self.gh.compare(request.repo, request.sha, head)
        if compared.get("status") != "ahead":
            why = (
                f"the pipeline pushed `{branch}` at {head[:7]}, which is not a descendant of "
                f"{request.short_sha}"
            )
            return decide.failed(request, why, where)
        listed = compared.get("files") or []
        if len(listed) > MAX_OUTPUT_FILES:
            why = f"the pipeline pushed over {MAX_OUTPUT_FILES} changed files to `{branch}`"
            return decide.failed(request, why, where)
        outputs = config.retrain.outputs
        others = [str(f["filename"]) for f in listed if not matches(str(f["filename"]), outputs)]
        if others:
            # retrain.outputs are the files a retrain may change: the PR would carry others
            # into the default branch under the App's name.
            more = f" and {len(others) - 5} more" if len(others) > 5 else ""
            shown = ", ".join(code(p, 120) for p in others[:5]) + more
            why = f"the pipeline pushed changes outside retrain.outputs to `{branch}`: {shown}"
            return decide.failed(request, why, where)
        changes = tuple(
            PushedFile(str(f["filename"]), None if f.get("status") == "removed" else str(f["sha"]))
            for f in listed
        )
        if not changes:
            return decide.nothing_pushed(request, branch)
        try:
            return self.publish_branch(request, head, branch, changes, saved)
        except GitHubError as exc:
            if exc.status not in (403, 422) or isinstance(exc, GitHubRateLimited):
                raise  # GitHub down or busy: the job fails, and run again it completes
            why = f"GitHub refused to open or move the retrain PR ({exc})"
            if exc.status == 403:
                why += "; the App needs the repository permission Contents: read & write"
            return decide.failed(request, why, where)

    def publish_branch(
        self,
        request: RetrainRequest,
        head: str,
        pushed: str,
        changes: Sequence[PushedFile],
        saved: RetrainLine | None,
    ) -> Publication:
        """Open the retrain PR of the branch the pipeline pushed, or move the open one to its
        head: one PR per retrain line, as `publish_outputs` keeps it."""
        repo = request.repo
        found = self.open_line(request, saved)
        written = (
            saved is not None
            and saved.base_sha == request.sha
            and saved.head_sha == head
            and (found is None or found.branch == saved.branch)
        )
        if written:
            # An earlier attempt of this very publication got this far.
            assert saved is not None
            line = saved
            if found is None or found.head_sha != head:
                self.point(repo, saved.branch, head, found is not None)
        else:
            branch = found.branch if found is not None else pushed
            files = {c.path: c.sha for c in changes}
            number = found.number if found is not None else None
            line = RetrainLine(branch, request.sha, head, "", number, files)
            # Saved before the branch moves: the PR's evaluation trusts that head by it.
            retrain_lines.save_line(self.conn, repo, line)
            if found is not None and found.head_sha != head:
                self.point(repo, branch, head, True)
            if found is not None:
                self.listed(request, found.number, found.title, line)
                return decide.moved(request, found.number, changes)
        if found is not None and line.number == found.number:
            self.listed(request, found.number, found.title, line)
            return decide.already_published(request, found.number)
        number = found.number if found is not None else self.open_pull(request, line, changes)
        self.gh.add_labels(repo, number, [decide.RETRAIN_LABEL])
        retrain_lines.save_line(self.conn, repo, replace(line, number=number))
        self.listed(request, number, found.title if found is not None else "", line)
        return decide.opened(request, number, changes)


def _line_head(pull: JSONDict, repo: str) -> str | None:
    """The PR's head branch when it is in `repo` itself (a fork's branch is never the line)."""
    head = pull.get("head") or {}
    head_repo = (head.get("repo") or {}).get("full_name")
    return str(head["ref"]) if head_repo and head_repo.lower() == repo.lower() else None
