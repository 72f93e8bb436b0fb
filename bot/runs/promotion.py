"""`/promote cN`: commit a finished matrix candidate's outputs on the PR head, never forced."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis

from bot.core.markdown_escape import code_span
from bot.core.pr_facts import PullRequest
from bot.errors import GitHubError, GitHubRateLimited
from bot.github.github_client import GitHubClient
from bot.runs.leaderboard import candidate_of
from bot.runs.output_commits import tree_entries
from bot.state import candidates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Promoted:
    """How a `/promote` went: the commit it wrote (None: refused or failed) and the answer."""

    commit: str | None
    answer: str
    detail: str  # for the audit entry


def _refused(answer: str, detail: str) -> Promoted:
    return Promoted(None, answer, detail)


def promote(
    gh: GitHubClient, conn: redis.Redis, pr: PullRequest, pull: dict[str, Any], name: str
) -> Promoted:
    """Commit candidate `name` (`c2`) of the PR's matrix on its head and move its branch there.

    Refused: on a fork's PR (mlgate never writes to a fork), without a matrix, for a candidate
    that does not exist, is superseded by a push, has not finished, or whose run failed. The
    branch moves only forward from the head the candidate ran on: a push meanwhile makes
    GitHub refuse the move, and nothing changes.
    """
    number = int(name[1:])
    if pr.from_fork:
        return _refused(
            "this PR's branch is in a fork, and mlgate never writes to a fork: nothing was "
            "committed. Set the candidate's parameters in your branch and push it instead.",
            f"{name}: fork",
        )
    record = candidates.matrix(conn, pr.repo, pr.number)
    if record is None:
        return _refused(
            "this PR has no candidates: `/retrain` with comma lists (`lr=0.1,0.01`) runs them.",
            f"{name}: no matrix",
        )
    count = len(record.candidates)
    if number > count:
        listed = "c1" if count == 1 else f"c1…c{count}"
        return _refused(f"there is no {name}: this PR's candidates are {listed}.", f"{name}: none")
    if record.head_sha != pr.head_sha:
        return _refused(
            f"{name} is superseded: it was trained on {record.head_sha[:7]}, and the PR's head "
            f"is now {pr.short_sha}. Comment `/retrain` again to train on the new head.",
            f"{name}: superseded",
        )
    result = candidates.results(conn, pr.repo, pr.number, record.id).get(number)
    if result is None or not result.finished:
        status = result.status if result is not None else "queued"
        return _refused(
            f"{name} is still {status}; promote it once the leaderboard shows its result.",
            f"{name}: {status}",
        )
    if result.reason is not None:
        return _refused(
            f"{name} failed without a result ({code_span(result.reason, 200)}): there is "
            "nothing to promote.",
            f"{name}: failed",
        )
    outputs = candidates.load_outputs(conn, pr.repo, pr.number, record.id, number)
    if outputs is None:
        return _refused(
            f"{name}'s outputs are no longer kept; comment `/retrain` again.",
            f"{name}: expired",
        )
    if not outputs.changes:
        return _refused(
            f"{name} changed none of the files in `retrain.outputs`: there is nothing to commit.",
            f"{name}: unchanged",
        )
    candidate = candidate_of(record, number)
    pairs = candidate.varied or tuple(candidate.parameters.items())
    given = " ".join(f"{k}={v}" for k, v in pairs)
    message = (
        f"Promote candidate {name} ({given})\n\n"
        f"The outputs of /retrain candidate {name}, trained on {pr.head_sha[:7]} with "
        + " ".join(f"{k}={v}" for k, v in candidate.parameters.items())
        + ".\n"
    )
    branch = str(pull["head"]["ref"])
    try:
        tree = gh.create_tree(
            pr.repo, tree_entries(gh, pr.repo, outputs.changes), outputs.base_tree
        )
        commit = gh.create_git_commit(pr.repo, message, tree, [pr.head_sha])
        # Never forced: a push since the candidate's head makes GitHub refuse the move.
        gh.update_ref(pr.repo, f"refs/heads/{branch}", commit, force=False)
    except GitHubError as exc:
        if exc.status not in (403, 409, 422) or isinstance(exc, GitHubRateLimited):
            raise
        why = (
            "the App needs the repository permission Contents: read & write"
            if exc.status == 403
            else f"the branch {code_span(branch)} moved since {pr.short_sha} (GitHub: not a "
            "fast forward); review the new head and retrain on it"
        )
        log.info("promote refused by GitHub: %s", exc, extra={"repo": pr.repo, "pr": pr.number})
        answer = f"GitHub refused the commit: {why}. Nothing was changed."
        return _refused(answer, f"{name}: refused by GitHub ({exc.status})")
    paths = ", ".join(code_span(c.path) for c in outputs.changes)
    shown = " ".join(code_span(f"{k}={v}") for k, v in pairs)
    return Promoted(
        commit,
        f"committed {name} ({shown}) to {code_span(branch)} as {commit[:7]}: {paths}. "
        "Its evaluation follows.",
        f"{name} as {commit[:7]}: {given}",
    )
