"""Opening and listing pull requests through the API, and a pull request's commits."""

from __future__ import annotations

from collections.abc import Callable

from bot.emulator.api_calls import (
    ApiError,
    Call,
    Reply,
    custom_failure,
    json_object,
    paginate,
    required_repo,
    string_field,
    validation_failed,
)
from bot.emulator.github_models import EmulatedRepo, PullRequest
from bot.emulator.github_state import GitHubState, PullExists

# "List commits on a pull request": "a maximum of 250 commits".
PULL_COMMITS_LIMIT = 250
PULL_SORTS = ("created", "updated", "popularity", "long-running")
STATES = ("open", "closed", "all")


class Pulls:
    """Handlers that open and list PRs: a PR opened here is the same kind of object the
    emulator's `open_pull_request` makes (files, head sha, mergeability from git)."""

    def __init__(self, emu: GitHubState) -> None:
        self.emu = emu

    def handlers(self) -> dict[str, Callable[[Call], Reply]]:
        return {
            "pulls/create": self.create_pull,
            "pulls/list": self.list_pulls,
            "pulls/list-commits": self.list_commits,
        }

    def create_pull(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        body = json_object(call.body)
        if body.get("issue") is not None:
            raise ApiError(422, "The emulator does not turn issues into pull requests.")
        head = string_field(body, "head", "PullRequest", required=True)
        base = string_field(body, "base", "PullRequest", required=True)
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise validation_failed(
                "PullRequest", "title", "title wasn't supplied.", "missing_field"
            )
        source, branch = self._head(repo, head, body.get("head_repo"))
        base_sha = repo.git.branch_sha(base)
        if base_sha is None:
            raise validation_failed("PullRequest", "base", f"base {base} does not exist.")
        head_sha = source.git.branch_sha(branch) if source is not None else None
        if source is None or head_sha is None:
            raise validation_failed("PullRequest", "head", f"head {head} does not exist.")
        if source is not repo:
            # A fork's commits are counted in the base repository, as GitHub's network shares
            # objects; the PR itself keeps them under refs/pull/N/head.
            repo.git.fetch(
                source.path, f"+refs/heads/{branch}:refs/emulator/{source.owner}/{branch}"
            )
        if repo.git.count(base_sha, head_sha) == 0:
            raise custom_failure("PullRequest", f"No commits between {base} and {head}")
        user = self.emu.bot_login
        body_text = body.get("body")
        try:
            pr = self.emu._store_pull(
                repo.full_name,
                source.full_name,
                branch,
                head_sha,
                base,
                user,
                title,
                body_text if isinstance(body_text, str) else None,
                body.get("draft") is True,
                refuse_duplicate=True,
            )
        except PullExists as exists:
            raise custom_failure(
                "PullRequest", f"A pull request already exists for {exists}."
            ) from None
        answer = self.emu.pull_json(pr)
        return Reply(201, answer, headers={"Location": answer["url"]})

    def _head(
        self, repo: EmulatedRepo, head: str, head_repo: object
    ) -> tuple[EmulatedRepo | None, str]:
        """The repository and branch `head` names: a branch here, or `owner:branch` of a fork
        (or of `head_repo`) in the same network."""
        owner, colon, branch = head.partition(":")
        if not colon:
            owner, branch = repo.owner, head
        if isinstance(head_repo, str) and head_repo:
            name = head_repo
        else:
            name = repo.full_name if owner == repo.owner else f"{owner}/{repo.name}"
        with self.emu._lock:
            source = self.emu._repos.get(name)
        if source is None or (source is not repo and source.fork_of != repo.full_name):
            return None, branch
        return source, branch

    def list_pulls(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        args = call.request.args
        state = args.get("state", "open")
        sort = args.get("sort", "created")
        direction = args.get("direction") or ("desc" if sort == "created" else "asc")
        if state not in STATES:
            raise validation_failed("PullRequest", "state", f"state must be one of {STATES}.")
        if sort not in PULL_SORTS:
            raise validation_failed("PullRequest", "sort", f"sort must be one of {PULL_SORTS}.")
        if direction not in ("asc", "desc"):
            raise validation_failed("PullRequest", "direction", "direction must be asc or desc.")
        with self.emu._lock:
            pulls = [pr for pr in self.emu._pulls.values() if pr.repo == repo.full_name]
        if state != "all":
            pulls = [pr for pr in pulls if pr.state == state]
        head = args.get("head")
        # "in the format of user:ref-name": GitHub ignores a head without the owner.
        if head and ":" in head:
            owner, _, branch = head.partition(":")
            pulls = [
                pr
                for pr in pulls
                if pr.head_repo.partition("/")[0] == owner and pr.head_ref == branch
            ]
        if args.get("base"):
            pulls = [pr for pr in pulls if pr.base_ref == args["base"]]
        pulls.sort(key=self._sort_key(sort), reverse=direction == "desc")
        page, headers = paginate(call.request, pulls, self.emu.url)
        return Reply(200, [self.emu.pull_simple_json(pr) for pr in page], headers=headers)

    def _sort_key(self, sort: str) -> Callable[[PullRequest], tuple[str | int, int]]:
        if sort == "updated":
            return lambda pr: (pr.updated_at, pr.number)
        if sort == "popularity":
            with self.emu._lock:
                comments = [(c.repo, c.issue_number) for c in self.emu._comments.values()]
            return lambda pr: (comments.count((pr.repo, pr.number)), pr.number)
        # "long-running" ranks by age like "created", among PRs open long enough.
        return lambda pr: (pr.created_at, pr.number)

    def list_commits(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        with self.emu._lock:
            pr = self.emu._pulls.get((repo.full_name, call.params["pull_number"]))
        if pr is None:
            raise ApiError(404, "Not Found")
        base = repo.git.branch_sha(pr.base_ref) or pr.head_sha
        merge_base = repo.git.merge_base(base, pr.head_sha) or base
        commits = repo.git.log(merge_base, pr.head_sha)[:PULL_COMMITS_LIMIT]
        page, headers = paginate(call.request, commits, self.emu.url)
        return Reply(200, [self.emu.commit_json(repo, c) for c in page], headers=headers)
