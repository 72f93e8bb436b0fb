"""Issues through the API (PRs are issues too): opening, editing, listing, labelling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.emulator.api_calls import (
    ApiError,
    Call,
    Reply,
    json_object,
    paginate,
    required_repo,
    validation_failed,
)
from bot.emulator.github_models import (
    PERMISSION_LEVELS,
    EmulatedRepo,
    EmulatorError,
    Issue,
    PullRequest,
    iso,
)
from bot.emulator.github_state import GitHubState

ISSUE_SORTS = ("created", "updated", "comments")
STATES = ("open", "closed", "all")
STATE_REASONS = ("completed", "not_planned", "duplicate", "reopened")
_LEVELS = {"read": 1, "write": 2, "admin": 3}


class Issues:
    """Handlers of the issues API, over the emulator's issues and PRs (one numbering)."""

    def __init__(self, emu: GitHubState) -> None:
        self.emu = emu

    def handlers(self) -> dict[str, Callable[[Call], Reply]]:
        return {
            "issues/create": self.create_issue,
            "issues/update": self.update_issue,
            "issues/list-for-repo": self.list_issues,
            "issues/add-labels": self.add_labels,
        }

    def _item(self, call: Call, repo: EmulatedRepo, level: str) -> Issue | PullRequest:
        item = self.emu._issue_like(repo.full_name, call.params["issue_number"])
        if item is None:
            raise ApiError(404, "Not Found")
        # The route lets issues or pull_requests through; a plain issue needs issues.
        token = call.caller.token
        if isinstance(item, Issue) and token is not None:
            if _LEVELS.get(token.permissions.get("issues", ""), 0) < _LEVELS[level]:
                raise ApiError(403, "Resource not accessible by integration")
        return item

    def create_issue(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        body = json_object(call.body)
        title = body.get("title")
        if title is None or (isinstance(title, str) and not title.strip()):
            raise validation_failed("Issue", "title", "title wasn't supplied.", "missing_field")
        if body.get("milestone") is not None:
            # The emulator's repositories have no milestones.
            raise validation_failed("Issue", "milestone", "milestone does not exist.")
        text = body.get("body")
        issue = self.emu._store_issue(
            repo.full_name,
            str(title),
            text if isinstance(text, str) else None,
            self.emu.bot_login,
            _label_names(body.get("labels") or []),
            self._assignees(repo, body),
            via_app=True,
        )
        answer = self.emu.issue_json(issue)
        return Reply(201, answer, headers={"Location": answer["url"]})

    def _assignees(self, repo: EmulatedRepo, body: dict[str, Any]) -> list[str]:
        logins = list(body.get("assignees") or [])
        if isinstance(body.get("assignee"), str):
            logins.insert(0, body["assignee"])
        for login in logins:
            with self.emu._lock:
                known = login in self.emu._users
            if not known or PERMISSION_LEVELS.index(self.emu.permission(repo.full_name, login)) < 1:
                # Only people with access to the repository can be assigned.
                raise validation_failed("Issue", "assignees", f"{login} cannot be assigned.")
        return list(dict.fromkeys(logins))

    def update_issue(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        item = self._item(call, repo, "write")
        body = json_object(call.body)
        if body.get("milestone") is not None:
            raise validation_failed("Issue", "milestone", "milestone does not exist.")
        state = body.get("state")
        emu = self.emu
        actor = emu.bot_login
        if isinstance(item, PullRequest) and state is not None and state != item.state:
            if state == "closed":
                emu.close_pull_request(repo.full_name, item.number, by=actor)
            elif item.merged:
                raise validation_failed(
                    "PullRequest", "state", "state cannot be changed: the pull request is merged."
                )
            else:
                try:
                    emu.reopen_pull_request(repo.full_name, item.number)
                except EmulatorError as exc:
                    raise validation_failed("PullRequest", "state", str(exc)) from None
        labels = _label_names(body["labels"]) if isinstance(body.get("labels"), list) else None
        names = emu._label_names(repo.full_name, labels) if labels is not None else None
        assignees = (
            self._assignees(repo, body)
            if "assignees" in body or isinstance(body.get("assignee"), str)
            else None
        )
        with emu._lock:
            if body.get("title") is not None:
                item.title = str(body["title"])
            if "body" in body:
                item.body = body["body"]
            if names is not None:
                item.labels = names
            if isinstance(item, Issue):
                if assignees is not None:
                    item.assignees = assignees
                if state is not None and state != item.state:
                    # "state_reason ... Ignored unless state is changed."
                    reason = body.get("state_reason")
                    item.state = state
                    if state == "closed":
                        item.state_reason = reason if reason in STATE_REASONS else "completed"
                        item.closed_at, item.closed_by = iso(), actor
                    else:
                        item.state_reason = "reopened"
                        item.closed_at = item.closed_by = None
            item.updated_at = iso()
        return Reply(200, emu.issue_json(item))

    def list_issues(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        args = call.request.args
        state = args.get("state", "open")
        sort = args.get("sort", "created")
        direction = args.get("direction", "desc")
        if state not in STATES:
            raise validation_failed("Issue", "state", f"state must be one of {STATES}.")
        if sort not in ISSUE_SORTS:
            raise validation_failed("Issue", "sort", f"sort must be one of {ISSUE_SORTS}.")
        if direction not in ("asc", "desc"):
            raise validation_failed("Issue", "direction", "direction must be asc or desc.")
        emu = self.emu
        with emu._lock:
            items: list[Issue | PullRequest] = [
                *(i for i in emu._issues.values() if i.repo == repo.full_name),
                *(p for p in emu._pulls.values() if p.repo == repo.full_name),
            ]
            comments = [(c.repo, c.issue_number) for c in emu._comments.values()]
        if state != "all":
            items = [i for i in items if i.state == state]
        wanted = [n.strip().lower() for n in args.get("labels", "").split(",") if n.strip()]
        if wanted:
            # "A list of comma separated label names": an issue must have all of them.
            items = [i for i in items if set(wanted) <= {n.lower() for n in i.labels}]
        if args.get("creator"):
            items = [i for i in items if i.user == args["creator"]]
        assignee = args.get("assignee")
        if assignee:
            items = [i for i in items if _assigned(i, assignee)]
        if args.get("since"):
            items = [i for i in items if i.updated_at >= args["since"]]

        def key(item: Issue | PullRequest) -> tuple[str | int, int]:
            if sort == "updated":
                return item.updated_at, item.number
            if sort == "comments":
                return comments.count((item.repo, item.number)), item.number
            return item.created_at, item.number

        items.sort(key=key, reverse=direction == "desc")
        page, headers = paginate(call.request, items, emu.url)
        return Reply(200, [emu.issue_json(i) for i in page], headers=headers)

    def add_labels(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        item = self._item(call, repo, "write")
        body = call.body
        # The documented body is {"labels": [...]}; GitHub also takes the bare list.
        given = body.get("labels") if isinstance(body, dict) else body
        if not isinstance(given, list) or not given:
            raise validation_failed("Label", "labels", "labels wasn't supplied.", "missing_field")
        names = self.emu._label_names(repo.full_name, _label_names(given))
        with self.emu._lock:
            item.labels = list(dict.fromkeys([*item.labels, *names]))
            item.updated_at = iso()
            labels = list(item.labels)
        return Reply(200, self.emu._labels_json(repo.full_name, labels))


def _label_names(given: list[Any]) -> list[str]:
    """Label names from strings or {"name": ...} objects, as the issues API takes them."""
    names = []
    for label in given:
        name = label.get("name") if isinstance(label, dict) else label
        if not isinstance(name, str) or not name.strip():
            raise validation_failed("Label", "labels", f"{label!r} is not a label name.")
        names.append(name.strip())
    return names


def _assigned(item: Issue | PullRequest, assignee: str) -> bool:
    # "none" for unassigned issues, "*" for any assignee, else a login.
    assignees = item.assignees if isinstance(item, Issue) else []
    if assignee == "none":
        return not assignees
    if assignee == "*":
        return bool(assignees)
    return assignee in assignees
