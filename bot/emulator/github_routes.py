"""The emulator's WSGI app: routing, authentication, limits, checks/comments/contents handlers."""

from __future__ import annotations

import base64
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from bot.emulator import app_auth
from bot.emulator.api_calls import (
    DOCS,
    ApiError,
    Call,
    Caller,
    Reply,
    Route,
    error_body,
    json_object,
    page_size,
    paginate,
    reason_phrase,
    required_repo,
    string_field,
    validation_failed,
)
from bot.emulator.app_user_routes import AppsAndUsers
from bot.emulator.git_data_routes import GitData
from bot.emulator.github_models import (
    ANONYMOUS_RATE_LIMIT,
    JSON,
    LEGACY_PERMISSION,
    PERMISSION_LEVELS,
    CheckRun,
    Comment,
    Deployment,
    DeploymentStatus,
    EmulatedRepo,
    Installation,
    PullRequest,
    RateInfo,
    Reaction,
    Status,
    Token,
    iso,
)
from bot.emulator.github_state import GitHubState
from bot.emulator.github_web import WebFlows
from bot.emulator.issue_routes import Issues
from bot.emulator.pull_routes import Pulls
from bot.loopback import RecordedRequest, RequestApp

logger = logging.getLogger("bot.emulator")

API_VERSION = "2022-11-28"
# Documented limits, each 422 when exceeded.
COMMENT_BODY_LIMIT = 65536  # "Create an issue comment": body of at most 65536 characters
CHECK_OUTPUT_LIMIT = 65535  # "Create a check run": output.summary / output.text, 65535 characters
ANNOTATIONS_PER_REQUEST = 50  # "The Checks API limits the number of annotations to 50 per request"
MAX_ACTIONS = 3  # check-run `actions`: "A maximum of three actions are accepted"
ACTION_LABEL_LIMIT = 20
ACTION_IDENTIFIER_LIMIT = 20
ACTION_DESCRIPTION_LIMIT = 40
STATUS_DESCRIPTION_LIMIT = 140  # "The maximum description length is 140 characters"
PULL_FILES_LIMIT = 3000  # "Responses include a maximum of 3000 files"
COMPARE_FILES_LIMIT = 300  # compare: "a maximum of 300 files"
COMPARE_COMMITS_LIMIT = 250  # compare: "up to 250 commits" without pagination
# Contents API: files over 1 MB come back with empty content and encoding "none".
CONTENTS_INLINE_LIMIT = 1024 * 1024
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
CHECK_CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)


_WRITE_ISSUES = (("issues", "pull_requests"), "write")
_READ_ISSUES = (("issues", "pull_requests"), "read")
ROUTES = (
    Route("/app/installations/<int:installation_id>/access_tokens", "POST",
          "apps/create-installation-access-token", "Installation", "jwt", None),
    Route("/repos/<owner>/<repo>/installation", "GET", "apps/get-repo-installation",
          "Installation", "jwt", None),
    Route("/app/hook/deliveries", "GET", "apps/list-webhook-deliveries", "Hook", "jwt", None),
    Route("/app/hook/deliveries/<int:delivery_id>/attempts", "POST",
          "apps/redeliver-webhook-delivery", "Hook", "jwt", None),
    Route("/repos/<owner>/<repo>/check-runs", "POST", "checks/create", "CheckRun",
          "installation", (("checks",), "write")),
    Route("/repos/<owner>/<repo>/check-runs/<int:check_run_id>", "PATCH", "checks/update",
          "CheckRun", "installation", (("checks",), "write")),
    Route("/repos/<owner>/<repo>/commits/<path:ref>/check-runs", "GET", "checks/list-for-ref",
          "CheckRun", "installation", (("checks",), "read")),
    Route("/repos/<owner>/<repo>/issues/<int:issue_number>/comments", "POST",
          "issues/create-comment", "IssueComment", "installation", _WRITE_ISSUES),
    Route("/repos/<owner>/<repo>/issues/<int:issue_number>/comments", "GET",
          "issues/list-comments", "IssueComment", "installation", _READ_ISSUES),
    Route("/repos/<owner>/<repo>/issues/comments/<int:comment_id>", "PATCH",
          "issues/update-comment", "IssueComment", "installation", _WRITE_ISSUES),
    Route("/repos/<owner>/<repo>/issues/comments/<int:comment_id>/reactions", "POST",
          "reactions/create-for-issue-comment", "Reaction", "installation", _WRITE_ISSUES),
    Route("/repos/<owner>/<repo>/collaborators/<username>/permission", "GET",
          "repos/get-collaborator-permission-level", "Collaborator", "installation",
          (("metadata",), "read")),
    Route("/repos/<owner>/<repo>/pulls/<int:pull_number>", "GET", "pulls/get", "PullRequest",
          "installation", (("pull_requests",), "read")),
    Route("/repos/<owner>/<repo>/pulls/<int:pull_number>/files", "GET", "pulls/list-files",
          "PullRequest", "installation", (("pull_requests",), "read")),
    Route("/repos/<owner>/<repo>/contents", "GET", "repos/get-content", "Content",
          "installation", (("contents",), "read")),
    Route("/repos/<owner>/<repo>/contents/<path:path>", "GET", "repos/get-content", "Content",
          "installation", (("contents",), "read")),
    Route("/repos/<owner>/<repo>/compare/<path:basehead>", "GET",
          "repos/compare-commits-with-basehead", "Commit", "installation",
          (("contents",), "read")),
    Route("/repos/<owner>/<repo>/statuses/<sha>", "POST", "repos/create-commit-status", "Status",
          "installation", (("statuses",), "write")),
    Route("/repos/<owner>/<repo>/deployments", "POST", "repos/create-deployment", "Deployment",
          "installation", (("deployments",), "write")),
    Route("/repos/<owner>/<repo>/deployments/<int:deployment_id>/statuses", "POST",
          "repos/create-deployment-status", "DeploymentStatus", "installation",
          (("deployments",), "write")),
    Route("/orgs/<org>/teams/<team_slug>/memberships/<username>", "GET",
          "teams/get-membership-for-user-in-org", "Team", "installation",
          (("members",), "read")),
    # The second wave: the Git Data API, opening PRs and issues, the App, the user.
    Route("/repos/<owner>/<repo>/git/blobs", "POST", "git/create-blob", "Blob",
          "installation", (("contents",), "write")),
    Route("/repos/<owner>/<repo>/git/trees", "POST", "git/create-tree", "Tree",
          "installation", (("contents",), "write")),
    Route("/repos/<owner>/<repo>/git/commits", "POST", "git/create-commit", "Commit",
          "installation", (("contents",), "write")),
    Route("/repos/<owner>/<repo>/git/refs", "POST", "git/create-ref", "Reference",
          "installation", (("contents",), "write")),
    Route("/repos/<owner>/<repo>/git/refs/<path:ref>", "PATCH", "git/update-ref", "Reference",
          "installation", (("contents",), "write")),
    Route("/repos/<owner>/<repo>/git/ref/<path:ref>", "GET", "git/get-ref", "Reference",
          "installation", (("contents",), "read")),
    Route("/repos/<owner>/<repo>/pulls", "POST", "pulls/create", "PullRequest",
          "installation", (("pull_requests",), "write")),
    Route("/repos/<owner>/<repo>/pulls", "GET", "pulls/list", "PullRequest",
          "installation", (("pull_requests",), "read")),
    Route("/repos/<owner>/<repo>/pulls/<int:pull_number>/commits", "GET", "pulls/list-commits",
          "PullRequest", "installation", (("pull_requests",), "read")),
    Route("/repos/<owner>/<repo>/issues", "POST", "issues/create", "Issue",
          "installation", (("issues",), "write")),
    Route("/repos/<owner>/<repo>/issues", "GET", "issues/list-for-repo", "Issue",
          "installation", _READ_ISSUES),
    Route("/repos/<owner>/<repo>/issues/<int:issue_number>", "PATCH", "issues/update", "Issue",
          "installation", _WRITE_ISSUES),
    Route("/repos/<owner>/<repo>/issues/<int:issue_number>/labels", "POST", "issues/add-labels",
          "Label", "installation", _WRITE_ISSUES),
    Route("/app", "GET", "apps/get-authenticated", "Integration", "jwt", None),
    Route("/app-manifests/<code>/conversions", "POST", "apps/create-from-manifest",
          "Integration", "none", None),
    Route("/user", "GET", "users/get-authenticated", "User", "user", None),
    Route("/user/installations", "GET", "apps/list-installations-for-authenticated-user",
          "Installation", "user", None),
    Route("/user/installations/<int:installation_id>/repositories", "GET",
          "apps/list-installation-repos-for-authenticated-user", "Repository", "user", None),
)  # fmt: skip

_LEVELS = {"read": 1, "write": 2, "admin": 3}


@functools.cache
def _url_map() -> Map:
    # Compiling werkzeug rules is slow (~0.1 s); one map serves every emulator in the process.
    rules = [
        Rule(route.rule, endpoint=str(index), methods=[route.method])
        for index, route in enumerate(ROUTES)
    ]
    return Map(rules, strict_slashes=False, merge_slashes=False)


class Api(RequestApp):
    """The WSGI application the emulator serves, answering from (and changing) `state`."""

    def __init__(self, state: GitHubState) -> None:
        self.emu = state
        self._map = _url_map()
        self._handlers: dict[str, Callable[[Call], Reply]] = {
            "apps/create-installation-access-token": self.create_token,
            "apps/get-repo-installation": self.get_repo_installation,
            "apps/list-webhook-deliveries": self.list_deliveries,
            "apps/redeliver-webhook-delivery": self.redeliver,
            "checks/create": self.create_check_run,
            "checks/update": self.update_check_run,
            "checks/list-for-ref": self.list_check_runs,
            "issues/create-comment": self.create_comment,
            "issues/list-comments": self.list_comments,
            "issues/update-comment": self.update_comment,
            "reactions/create-for-issue-comment": self.create_reaction,
            "repos/get-collaborator-permission-level": self.get_permission,
            "teams/get-membership-for-user-in-org": self.get_team_membership,
            "pulls/get": self.get_pull,
            "pulls/list-files": self.list_pull_files,
            "repos/get-content": self.get_content,
            "repos/compare-commits-with-basehead": self.compare,
            "repos/create-commit-status": self.create_status,
            "repos/create-deployment": self.create_deployment,
            "repos/create-deployment-status": self.create_deployment_status,
        }
        for part in (GitData(state), Pulls(state), Issues(state), AppsAndUsers(state)):
            self._handlers.update(part.handlers())
        self.web = WebFlows(state)

    # -- WSGI ---------------------------------------------------------------------------------

    def respond(self, request: Request) -> Response:
        method = request.method.upper()
        path = request.path
        if self.web.serves(path):
            return self._respond_web(request, method, path)
        raw = request.get_data()
        body: Any = None
        malformed = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                malformed = True
        caller = self._authenticate(request)
        rate = self._rate(caller)
        fault = self.emu.take_fault(method, path)
        if fault is not None:
            reply = Reply(
                fault.status, fault.body or error_body(fault.status, reason_phrase(fault.status))
            )
            reply.headers.update(rate.headers())
            reply.headers.update(fault.headers)
        else:
            try:
                reply = self._dispatch(request, method, path, body, malformed, caller, rate)
            except ApiError as error:
                reply = self._error(error, request)
            except Exception:
                logger.exception("emulator failed on %s %s", method, path)
                reply = Reply(500, error_body(500, "Server Error"))
            reply.headers = {**rate.headers(), **reply.headers}
        self.emu.record(
            RecordedRequest(
                method=method,
                path=path,
                query={k: v for k, v in request.args.items()},
                status=reply.status,
                body=body,
                auth=caller.kind,
            )
        )
        return self._response(reply)

    def _respond_web(self, request: Request, method: str, path: str) -> Response:
        fault = self.emu.take_fault(method, path)
        if fault is not None:
            body = fault.body or error_body(fault.status, reason_phrase(fault.status))
            response = self._response(Reply(fault.status, body, headers=dict(fault.headers)))
        else:
            response = self.web.respond(request)
        self.emu.record(
            RecordedRequest(
                method=method,
                path=path,
                query={k: v for k, v in request.args.items()},
                status=response.status_code,
                body=dict(request.form.items()) or None,
                # A browser carries the signed-in person's session; the code exchange comes
                # from the App's server with its client secret instead.
                auth=(
                    "client"
                    if path == "/login/oauth/access_token"
                    else "session"
                    if self.emu.signed_in
                    else "none"
                ),
            )
        )
        return response

    def _response(self, reply: Reply) -> Response:
        if reply.raw is not None:
            data = reply.raw
        elif reply.json is None:
            data = b""
        else:
            data = json.dumps(reply.json).encode()
        response = Response(data, status=reply.status, content_type=reply.content_type)
        response.headers["x-github-request-id"] = uuid.uuid4().hex[:20].upper()
        response.headers["x-github-api-version-selected"] = API_VERSION
        response.headers["x-github-media-type"] = "github.v3; format=json"
        for name, value in reply.headers.items():
            response.headers[name] = value
        return response

    def _error(self, error: ApiError, request: Request) -> Reply:
        body = error_body(error.status, error.message, self._doc_url(request))
        if error.errors is not None:
            body["errors"] = error.errors
        return Reply(error.status, body, headers=dict(error.headers))

    def _doc_url(self, request: Request) -> str:
        spec = self.emu.spec
        try:
            endpoint, _ = self._map.bind("127.0.0.1").match(request.path, request.method)
        except HTTPException:
            return DOCS
        route = ROUTES[int(endpoint)]
        if spec is None:
            return DOCS
        return spec.docs.get(route.operation, DOCS)

    # -- authentication -----------------------------------------------------------------------

    def _authenticate(self, request: Request) -> Caller:
        header = request.headers.get("Authorization", "").strip()
        if not header:
            return Caller("none")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("token", "bearer") or not credential:
            return Caller("invalid")
        if credential.startswith(app_auth.TOKEN_PREFIX):
            with self.emu._lock:
                token = self.emu._tokens.get(credential)
            if token is None or token.expires_at <= time.time():
                return Caller("invalid")
            return Caller("installation", token=token)
        if credential.startswith(app_auth.USER_TOKEN_PREFIX):
            user = self.emu.apps.user_token(credential)
            return Caller("user", user=user) if user is not None else Caller("invalid")
        if scheme.lower() == "bearer" and app_auth.looks_like_jwt(credential):
            # The claimed issuer picks the key; an unknown one is checked against the
            # emulator's own App, which then names what is wrong as GitHub does.
            issuer = app_auth.unverified_issuer(credential)
            app = (self.emu.apps.by_issuer(issuer) if issuer else None) or self.emu.apps.own
            problem = app_auth.check_app_jwt(
                credential, app.public_key, app.id, time.time(), client_id=app.client_id
            )
            if problem is not None:
                return Caller("invalid", jwt_error=problem)
            return Caller("jwt", app=app)
        return Caller("invalid")

    def _rate(self, caller: Caller) -> RateInfo:
        # GitHub counts an installation's requests together, whichever of its tokens is used.
        if caller.kind == "installation" and caller.token is not None:
            return self.emu._consume_rate(
                f"installation:{caller.token.installation_id}", self.emu.rate_limit
            )
        if caller.kind == "jwt" and caller.app is not None:
            key = "app" if caller.app is self.emu.apps.own else f"app:{caller.app.id}"
            return self.emu._consume_rate(key, self.emu.rate_limit)
        if caller.kind == "user" and caller.user is not None:
            return self.emu._consume_rate(f"user:{caller.user.login}", self.emu.rate_limit)
        return self.emu._consume_rate("anonymous", ANONYMOUS_RATE_LIMIT)

    # -- dispatch -----------------------------------------------------------------------------

    def _dispatch(
        self,
        request: Request,
        method: str,
        path: str,
        body: Any,
        malformed: bool,
        caller: Caller,
        rate: RateInfo,
    ) -> Reply:
        try:
            endpoint, matched = self._map.bind("127.0.0.1").match(path, method)
            params = dict(matched)
        except HTTPException:
            raise ApiError(404, "Not Found") from None
        route = ROUTES[int(endpoint)]
        self._check_auth(route, caller)
        if rate.exceeded:
            scope = (
                f"installation ID {caller.token.installation_id}"
                if caller.token is not None
                else "this app"
            )
            raise ApiError(
                403,
                f"API rate limit exceeded for {scope}. If you reach out to GitHub Support for "
                "help, please include the request ID.",
            )
        # As GitHub: a repository the token cannot see is 404 whatever it asks, and only then
        # does a permission the token lacks make a 403.
        repo = self._repo_for(route, params, caller)
        self._check_permission(route, caller)
        if malformed:
            raise ApiError(400, "Problems parsing JSON")
        limits = _LIMITS.get(route.operation)
        if limits is not None and isinstance(body, dict):
            # Documented limits first: their messages say more than the schema's.
            limits(body)
        spec = self.emu.spec
        if method in ("POST", "PATCH", "PUT") and spec is not None:
            problems = spec.validate(route.operation, {} if body is None else body)
            if problems:
                raise ApiError(
                    422,
                    "Validation Failed",
                    errors=[
                        {
                            "resource": route.resource,
                            "field": p.field,
                            "code": p.code,
                            "message": p.message,
                        }
                        for p in problems
                    ],
                )
        call = Call(request, params, body, caller, repo)
        return self._handlers[route.operation](call)

    def _check_auth(self, route: Route, caller: Caller) -> None:
        if route.needs == "jwt":
            if caller.kind != "jwt":
                raise ApiError(401, caller.jwt_error or app_auth.MSG_UNDECODABLE)
            return
        if route.needs == "none":
            if caller.kind == "invalid":
                raise ApiError(401, "Bad credentials")
            return
        if caller.kind == "none":
            raise ApiError(401, "Requires authentication")
        if caller.kind == "invalid":
            raise ApiError(401, "Bad credentials")
        if caller.kind != route.needs:
            if {caller.kind, route.needs} == {"installation", "user"}:
                # An installation token on a user's endpoint, or a user access token on a
                # repository's: the emulator takes user access tokens on /user only.
                raise ApiError(403, "Resource not accessible by integration")
            raise ApiError(401, "Bad credentials")

    def _check_permission(self, route: Route, caller: Caller) -> None:
        token = caller.token
        if route.permission is not None and token is not None:
            names, level = route.permission
            granted = max(_LEVELS.get(token.permissions.get(name, ""), 0) for name in names)
            if granted < _LEVELS[level]:
                raise ApiError(403, "Resource not accessible by integration")

    def _repo_for(
        self, route: Route, params: dict[str, Any], caller: Caller
    ) -> EmulatedRepo | None:
        if "owner" not in params:
            return None
        with self.emu._lock:
            repo = self.emu._repos.get(f"{params['owner']}/{params['repo']}")
        if repo is None:
            raise ApiError(404, "Not Found")
        if route.needs == "installation":
            token = caller.token
            # A repository outside the token's installation is invisible, not forbidden.
            if (
                token is None
                or repo.installation_id != token.installation_id
                or (token.repository_ids is not None and repo.id not in token.repository_ids)
            ):
                raise ApiError(404, "Not Found")
        return repo

    # -- App endpoints (JWT) ------------------------------------------------------------------

    def create_token(self, call: Call) -> Reply:
        installation_id = call.params["installation_id"]
        emu = self.emu
        with emu._lock:
            installation = emu._installations.get(installation_id)
            if installation is None or not self._own(call, installation):
                raise ApiError(404, "Not Found")
            installed = [r for r in emu._repos.values() if r.installation_id == installation_id]
        body = call.body if isinstance(call.body, dict) else {}
        names = body.get("repositories")
        ids = body.get("repository_ids")
        selected: set[int] | None = None
        if names or ids:
            selected = set()
            by_name = {r.name: r for r in installed} | {r.full_name: r for r in installed}
            by_id = {r.id: r for r in installed}
            for name in names or []:
                if name not in by_name:
                    raise ApiError(422, _INACCESSIBLE_REPOS)
                selected.add(by_name[name].id)
            for repo_id in ids or []:
                if repo_id not in by_id:
                    raise ApiError(422, _INACCESSIBLE_REPOS)
                selected.add(repo_id)
        permissions = dict(installation.permissions)
        requested = body.get("permissions")
        if isinstance(requested, dict) and requested:
            for name, level in requested.items():
                if _LEVELS.get(installation.permissions.get(name, ""), 0) < _LEVELS.get(level, 9):
                    raise ApiError(
                        422, "The permissions requested are not granted to this installation."
                    )
            permissions = dict(requested)
        value = app_auth.new_installation_token()
        expires = time.time() + emu.token_lifetime
        token = Token(
            token=value,
            installation_id=installation_id,
            expires_at=expires,
            permissions=permissions,
            repository_ids=frozenset(selected) if selected is not None else None,
        )
        with emu._lock:
            emu._tokens[value] = token
        answer: JSON = {
            "token": value,
            "expires_at": iso(expires),
            "permissions": permissions,
            "repository_selection": "all" if selected is None else "selected",
        }
        if selected is not None:
            answer["repositories"] = [emu.repo_json(r) for r in installed if r.id in selected]
        return Reply(201, answer)

    def get_repo_installation(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        with self.emu._lock:
            installation = (
                self.emu._installations.get(repo.installation_id)
                if repo.installation_id is not None
                else None
            )
        if installation is None or not self._own(call, installation):
            raise ApiError(404, "Not Found")
        return Reply(200, self.emu.installation_json(installation))

    def _own(self, call: Call, installation: Installation) -> bool:
        # An App sees its own installations only: another App's are "Not Found".
        app = call.caller.app
        return app is not None and self.emu.installation_app(installation) == app.id

    def _own_hook(self, call: Call) -> bool:
        # The delivery log is the emulator's own App's; an App made from a manifest has none.
        return call.caller.app is self.emu.apps.own

    def list_deliveries(self, call: Call) -> Reply:
        args = call.request.args
        per_page = page_size(args.get("per_page"))
        items = self.emu._delivery_list() if self._own_hook(call) else []
        wanted = args.get("status")
        if wanted == "success":
            items = [d for d in items if 200 <= d.status_code < 300]
        elif wanted == "failure":
            items = [d for d in items if not 200 <= d.status_code < 300]
        cursor = args.get("cursor")
        if cursor:
            # Cursors are opaque to clients; ours is "v1_" and the last id already seen.
            try:
                after = int(cursor.removeprefix("v1_"))
            except ValueError:
                raise ApiError(400, "Invalid cursor") from None
            items = [d for d in items if d.id < after]
        page, rest = items[:per_page], items[per_page:]
        headers = {}
        if rest and page:
            query = {k: v for k, v in args.items() if k != "cursor"}
            query.update({"per_page": str(per_page), "cursor": f"v1_{page[-1].id}"})
            headers["Link"] = f'<{self.emu.url}/app/hook/deliveries?{urlencode(query)}>; rel="next"'
        return Reply(200, [d.as_json() for d in page], headers=headers)

    def redeliver(self, call: Call) -> Reply:
        delivery_id = call.params["delivery_id"]
        with self.emu._lock:
            known = any(d.id == delivery_id for d in self.emu._deliveries)
        if not known or not self._own_hook(call):
            raise ApiError(404, "Not Found")
        self.emu.redeliver(delivery_id)
        return Reply(202, {})

    # -- checks -------------------------------------------------------------------------------

    def create_check_run(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        body = json_object(call.body)
        name = string_field(body, "name", "CheckRun", required=True)
        head_sha = string_field(body, "head_sha", "CheckRun", required=True)
        sha = repo.git.resolve(head_sha)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {head_sha}")
        emu = self.emu
        now = iso()
        with emu._lock:
            suite = emu._suites.setdefault((repo.full_name, sha), emu._next_id())
            run = CheckRun(
                id=emu._next_id(),
                repo=repo.full_name,
                head_sha=sha,
                name=name,
                suite_id=suite,
                status="queued",
                conclusion=None,
                started_at=now,
                completed_at=None,
                details_url=f"https://github.com/apps/{emu.app_slug}",
                external_id="",
            )
            _apply_check_run(run, body, creating=True)
            emu._check_runs[run.id] = run
            return Reply(201, emu.check_run_json(run))

    def update_check_run(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        body = json_object(call.body)
        emu = self.emu
        with emu._lock:
            run = emu._check_runs.get(call.params["check_run_id"])
            if run is None or run.repo != repo.full_name:
                raise ApiError(404, "Not Found")
        with emu._lock:
            _apply_check_run(run, body, creating=False)
            return Reply(200, emu.check_run_json(run))

    def list_check_runs(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        ref = call.params["ref"]
        sha = repo.git.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        args = call.request.args
        with self.emu._lock:
            runs = [
                r
                for r in self.emu._check_runs.values()
                if r.repo == repo.full_name and r.head_sha == sha
            ]
        if args.get("check_name"):
            runs = [r for r in runs if r.name == args["check_name"]]
        if args.get("status"):
            runs = [r for r in runs if r.status == args["status"]]
        runs.sort(key=lambda r: r.id, reverse=True)
        if args.get("filter", "latest") == "latest":
            # "latest returns the most recent check runs": one per name.
            seen: set[str] = set()
            latest = []
            for run in runs:
                if run.name not in seen:
                    seen.add(run.name)
                    latest.append(run)
            runs = latest
        page, headers = paginate(call.request, runs, self.emu.url)
        with self.emu._lock:
            items = [self.emu.check_run_json(r) for r in page]
        return Reply(200, {"total_count": len(runs), "check_runs": items}, headers=headers)

    # -- issue comments and reactions ---------------------------------------------------------

    def _issue_exists(self, repo: EmulatedRepo, number: int) -> None:
        if self.emu._issue_like(repo.full_name, number) is None:
            raise ApiError(404, "Not Found")

    def create_comment(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        number = call.params["issue_number"]
        self._issue_exists(repo, number)
        body = string_field(json_object(call.body), "body", "IssueComment", required=True)
        comment = self.emu._store_comment(
            repo.full_name, number, body, self.emu.bot_login, via_app=True
        )
        data = self.emu.comment_json(comment)
        return Reply(201, data, headers={"Location": data["url"]})

    def list_comments(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        number = call.params["issue_number"]
        self._issue_exists(repo, number)
        since = call.request.args.get("since")
        with self.emu._lock:
            found = [
                c
                for c in self.emu._comments.values()
                if c.repo == repo.full_name
                and c.issue_number == number
                and (not since or c.updated_at >= since)
            ]
        page, headers = paginate(call.request, found, self.emu.url)
        return Reply(200, [self.emu.comment_json(c) for c in page], headers=headers)

    def _comment(self, repo: EmulatedRepo, comment_id: int) -> Comment:
        with self.emu._lock:
            comment = self.emu._comments.get(comment_id)
        if comment is None or comment.repo != repo.full_name:
            raise ApiError(404, "Not Found")
        return comment

    def update_comment(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        comment = self._comment(repo, call.params["comment_id"])
        body = string_field(json_object(call.body), "body", "IssueComment", required=True)
        with self.emu._lock:
            comment.body = body
            comment.updated_at = iso()
        return Reply(200, self.emu.comment_json(comment))

    def create_reaction(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        comment = self._comment(repo, call.params["comment_id"])
        content = string_field(json_object(call.body), "content", "Reaction", required=True)
        if content not in REACTIONS:
            raise validation_failed(
                "Reaction", "content", f"content is not one of {', '.join(REACTIONS)}."
            )
        emu = self.emu
        with emu._lock:
            existing = emu._reactions.setdefault(comment.id, [])
            for reaction in existing:
                # "Reaction exists": the same user's same reaction is answered 200, not added.
                if reaction.user == emu.bot_login and reaction.content == content:
                    return Reply(200, emu.reaction_json(reaction))
            reaction = Reaction(emu._next_id(), comment.id, emu.bot_login, content, iso())
            existing.append(reaction)
            return Reply(201, emu.reaction_json(reaction))

    # -- collaborators, pulls, contents, compare ----------------------------------------------

    def get_permission(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        login = call.params["username"]
        with self.emu._lock:
            known = login in self.emu._users
        if not known:
            raise ApiError(404, "Not Found")
        role = self.emu.permission(repo.full_name, login)
        rank = PERMISSION_LEVELS.index(role)
        user = {
            **self.emu.user_json(login),
            "permissions": {
                "pull": rank >= 1,
                "triage": rank >= 2,
                "push": rank >= 3,
                "maintain": rank >= 4,
                "admin": rank >= 5,
            },
            "role_name": role,
        }
        # GitHub keeps the legacy base roles in `permission`: maintain shows as write,
        # triage as read; `role_name` carries the real role.
        return Reply(200, {"permission": LEGACY_PERMISSION[role], "role_name": role, "user": user})

    def get_team_membership(self, call: Call) -> Reply:
        org, slug, login = call.params["org"], call.params["team_slug"], call.params["username"]
        state = self.emu.team_membership(org, slug, login)
        if state is None:
            # GitHub answers 404 for a user who is not a member, as for an unknown team.
            raise ApiError(404, "Not Found")
        url = self.emu._api(f"/orgs/{org}/teams/{slug}/memberships/{login}")
        return Reply(200, {"url": url, "role": "member", "state": state})

    def _pull(self, repo: EmulatedRepo, number: int) -> PullRequest:
        with self.emu._lock:
            pr = self.emu._pulls.get((repo.full_name, number))
        if pr is None:
            raise ApiError(404, "Not Found")
        return pr

    def get_pull(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        pr = self._pull(repo, call.params["pull_number"])
        accept = call.request.headers.get("Accept", "")
        if "diff" in accept or "patch" in accept:
            base = repo.git.branch_sha(pr.base_ref) or pr.head_sha
            merge_base = repo.git.merge_base(base, pr.head_sha) or base
            text = repo.git.diff_text(merge_base, pr.head_sha)
            return Reply(200, raw=text.encode(), content_type="text/plain; charset=utf-8")
        return Reply(200, self.emu.pull_json(pr))

    def list_pull_files(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        pr = self._pull(repo, call.params["pull_number"])
        base = repo.git.branch_sha(pr.base_ref) or pr.head_sha
        merge_base = repo.git.merge_base(base, pr.head_sha) or base
        changes = repo.git.diff(merge_base, pr.head_sha)[:PULL_FILES_LIMIT]
        page, headers = paginate(call.request, changes, self.emu.url)
        return Reply(
            200,
            [self.emu.diff_entry_json(repo, c, pr.head_sha) for c in page],
            headers=headers,
        )

    def get_content(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        path = str(call.params.get("path", "")).strip("/")
        ref = call.request.args.get("ref") or repo.default_branch
        sha = repo.git.resolve(ref)
        if sha is None:
            raise ApiError(404, f"No commit found for the ref {ref}")
        entry = repo.git.entry(sha, path)
        if entry is None:
            raise ApiError(404, "Not Found")
        accept = call.request.headers.get("Accept", "")
        if entry.type == "tree":
            listing = [
                self._content_entry(repo, e.path, e.mode, e.type, e.sha, e.size or 0, ref)
                for e in repo.git.list_dir(sha, path)
            ]
            if "vnd.github.object" in accept:
                me = self._content_entry(repo, path, entry.mode, "tree", entry.sha, 0, ref)
                return Reply(200, {**me, "entries": listing})
            return Reply(200, listing)
        data = repo.git.blob(entry.sha) if entry.type == "blob" else b""
        if "vnd.github.raw" in accept and entry.type == "blob":
            return Reply(200, raw=data, content_type="application/vnd.github.raw")
        answer = self._content_entry(repo, path, entry.mode, entry.type, entry.sha, len(data), ref)
        if answer["type"] == "symlink":
            answer["target"] = data.decode("utf-8", "replace")
        elif answer["type"] == "file":
            if len(data) > CONTENTS_INLINE_LIMIT:
                answer.update(content="", encoding="none")
            else:
                answer.update(content=_wrap_base64(data), encoding="base64")
        return Reply(200, answer)

    def _content_entry(
        self, repo: EmulatedRepo, path: str, mode: str, kind: str, sha: str, size: int, ref: str
    ) -> JSON:
        if kind == "tree":
            type_ = "dir"
        elif kind == "commit":
            type_ = "submodule"
        elif mode == "120000":
            type_ = "symlink"
        else:
            type_ = "file"
        api = self.emu._api(f"/repos/{repo.full_name}/contents/{path}?ref={ref}")
        git_kind = "trees" if kind == "tree" else "blobs"
        git_url = self.emu._api(f"/repos/{repo.full_name}/git/{git_kind}/{sha}")
        view = "tree" if kind == "tree" else "blob"
        html = f"https://github.com/{repo.full_name}/{view}/{ref}/{path}"
        return {
            "type": type_,
            "size": size,
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": api,
            "git_url": git_url,
            "html_url": html,
            "download_url": (
                f"https://raw.githubusercontent.com/{repo.full_name}/{ref}/{path}"
                if type_ == "file"
                else None
            ),
            "_links": {"self": api, "git": git_url, "html": html},
        }

    def _resolve_compare_ref(self, repo: EmulatedRepo, ref: str) -> str:
        # "owner:branch" names a branch of that owner's fork of the repository.
        if ":" in ref:
            owner, _, branch = ref.partition(":")
            with self.emu._lock:
                other = self.emu._repos.get(f"{owner}/{repo.name}")
            if other is None:
                raise ApiError(404, "Not Found")
            if other is not repo:
                sha = other.git.branch_sha(branch)
                if sha is None:
                    raise ApiError(404, "Not Found")
                repo.git.fetch(other.path, f"+refs/heads/{branch}:refs/emulator/{owner}/{branch}")
                return sha
            ref = branch
        sha = repo.git.resolve(ref)
        if sha is None:
            raise ApiError(404, "Not Found")
        return sha

    def compare(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        basehead = call.params["basehead"]
        if "..." not in basehead:
            raise ApiError(404, "Not Found")
        base_ref, _, head_ref = basehead.partition("...")
        base = self._resolve_compare_ref(repo, base_ref)
        head = self._resolve_compare_ref(repo, head_ref)
        merge_base = repo.git.merge_base(base, head)
        if merge_base is None:
            raise ApiError(404, f"No common ancestor between {base_ref} and {head_ref}.")
        ahead = repo.git.count(base, head)
        behind = repo.git.count(head, base)
        if ahead == 0 and behind == 0:
            status = "identical"
        elif behind == 0:
            status = "ahead"
        elif ahead == 0:
            status = "behind"
        else:
            status = "diverged"
        commits = repo.git.log(base, head)
        headers: dict[str, str] = {}
        args = call.request.args
        if "page" in args or "per_page" in args:
            commits, headers = paginate(call.request, commits, self.emu.url)
        else:
            commits = commits[-COMPARE_COMMITS_LIMIT:]
        changes = repo.git.diff(merge_base, head)[:COMPARE_FILES_LIMIT]
        base_info = repo.git.log(None, base, limit=None)[-1:]
        mb_info = repo.git.log(None, merge_base)[-1:]
        emu = self.emu
        html = f"https://github.com/{repo.full_name}/compare/{basehead}"
        return Reply(
            200,
            {
                "url": emu._api(f"/repos/{repo.full_name}/compare/{basehead}"),
                "html_url": html,
                "permalink_url": f"https://github.com/{repo.full_name}/compare/{base}...{head}",
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "base_commit": emu.commit_json(repo, base_info[0]),
                "merge_base_commit": emu.commit_json(repo, mb_info[0]),
                "status": status,
                "ahead_by": ahead,
                "behind_by": behind,
                "total_commits": ahead,
                "commits": [emu.commit_json(repo, c) for c in commits],
                "files": [emu.diff_entry_json(repo, c, head) for c in changes],
            },
            headers=headers,
        )

    # -- statuses and deployments -------------------------------------------------------------

    def create_status(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        sha_param = call.params["sha"]
        sha = repo.git.resolve(sha_param)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {sha_param}")
        body = json_object(call.body)
        state = string_field(body, "state", "Status", required=True)
        if state not in ("error", "failure", "pending", "success"):
            raise validation_failed("Status", "state", "state is not included in the list")
        description = body.get("description")
        if isinstance(description, str) and len(description) > STATUS_DESCRIPTION_LIMIT:
            raise validation_failed(
                "Status",
                "description",
                f"description is too long (maximum is {STATUS_DESCRIPTION_LIMIT} characters)",
                code="custom",
            )
        emu = self.emu
        with emu._lock:
            status = Status(
                id=emu._next_id(),
                repo=repo.full_name,
                sha=sha,
                state=state,
                description=description,
                target_url=body.get("target_url"),
                context=body.get("context") or "default",
                created_at=iso(),
                creator=emu.bot_login,
            )
            emu._statuses[status.id] = status
            data = emu.status_json(status)
        return Reply(201, data, headers={"Location": data["url"]})

    def create_deployment(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        body = json_object(call.body)
        ref = string_field(body, "ref", "Deployment", required=True)
        sha = repo.git.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No ref found for: {ref}")
        is_branch = repo.git.branch_sha(ref) is not None
        default_sha = repo.git.branch_sha(repo.default_branch)
        if (
            body.get("auto_merge", True)
            and is_branch
            and ref != repo.default_branch
            and default_sha is not None
            and repo.git.count(sha, default_sha) > 0
        ):
            # "auto_merge ... Attempts to automatically merge the default branch into the
            # requested ref, if it's behind the default branch" - and answers 202, no deployment.
            repo.git.merge(
                ref,
                default_sha,
                f"Merge branch '{repo.default_branch}' into {ref}",
                author_name=self.emu.bot_login,
                author_email=self.emu._author_email(self.emu.bot_login),
            )
            self.emu._branch_moved(repo, ref, repo.head(ref))
            return Reply(
                202, {"message": f"Auto-merged {repo.default_branch} into {ref} on deployment."}
            )
        required = body.get("required_contexts")
        with self.emu._lock:
            latest: dict[str, str] = {}
            for status in self.emu._statuses.values():
                if status.repo == repo.full_name and status.sha == sha:
                    latest[status.context] = status.state
        contexts = list(latest) if required is None else list(required)
        failing = [c for c in contexts if latest.get(c) != "success"]
        if failing:
            # "If you omit this parameter, GitHub verifies all unique contexts" (409 otherwise).
            raise ApiError(
                409,
                f"Conflict: Commit status checks failed for {ref}.",
                errors=[
                    {
                        "contexts": [
                            {"context": c, "state": latest.get(c, "missing")} for c in failing
                        ],
                        "resource": "Deployment",
                        "field": "required_contexts",
                        "code": "invalid",
                    }
                ],
            )
        payload = body.get("payload", {})
        if isinstance(payload, str):
            try:
                payload = json.loads(payload) if payload.strip() else {}
            except ValueError:
                pass
        environment = body.get("environment") or "production"
        production = body.get("production_environment")
        emu = self.emu
        with emu._lock:
            now = iso()
            deployment = Deployment(
                id=emu._next_id(),
                repo=repo.full_name,
                sha=sha,
                ref=ref,
                task=body.get("task") or "deploy",
                payload=payload,
                environment=environment,
                original_environment=environment,
                description=body.get("description"),
                transient_environment=bool(body.get("transient_environment", False)),
                production_environment=(
                    environment == "production" if production is None else bool(production)
                ),
                created_at=now,
                updated_at=now,
                creator=emu.bot_login,
            )
            emu._deployments[deployment.id] = deployment
            emu._deployment_statuses[deployment.id] = []
            return Reply(201, emu.deployment_json(deployment))

    def create_deployment_status(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        emu = self.emu
        with emu._lock:
            deployment = emu._deployments.get(call.params["deployment_id"])
        if deployment is None or deployment.repo != repo.full_name:
            raise ApiError(404, "Not Found")
        body = json_object(call.body)
        state = string_field(body, "state", "DeploymentStatus", required=True)
        states = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
        if state not in states:
            raise validation_failed(
                "DeploymentStatus", "state", "state is not included in the list"
            )
        description = body.get("description") or ""
        if len(description) > STATUS_DESCRIPTION_LIMIT:
            raise validation_failed(
                "DeploymentStatus",
                "description",
                f"description is too long (maximum is {STATUS_DESCRIPTION_LIMIT} characters)",
                code="custom",
            )
        log_url = body.get("log_url") or ""
        # "Setting log_url will automatically set target_url to the same value."
        target_url = log_url or body.get("target_url") or ""
        with emu._lock:
            if body.get("environment"):
                deployment.environment = body["environment"]
            now = iso()
            status = DeploymentStatus(
                id=emu._next_id(),
                deployment_id=deployment.id,
                state=state,
                description=description,
                environment=deployment.environment,
                target_url=target_url,
                log_url=log_url or target_url,
                environment_url=body.get("environment_url") or "",
                created_at=now,
                creator=emu.bot_login,
            )
            emu._deployment_statuses[deployment.id].append(status)
            deployment.updated_at = now
            if state == "success" and body.get("auto_inactive", True):
                self._inactivate_older(deployment)
            return Reply(201, emu.deployment_status_json(status))

    def _inactivate_older(self, deployment: Deployment) -> None:
        # auto_inactive: earlier successful non-transient, non-production deployments to the
        # same environment get an `inactive` status.
        emu = self.emu
        for other in emu._deployments.values():
            if (
                other.id == deployment.id
                or other.repo != deployment.repo
                or other.environment != deployment.environment
                or other.transient_environment
                or other.production_environment
            ):
                continue
            history = emu._deployment_statuses.get(other.id, [])
            if history and history[-1].state == "success":
                history.append(
                    DeploymentStatus(
                        id=emu._next_id(),
                        deployment_id=other.id,
                        state="inactive",
                        description="",
                        environment=other.environment,
                        target_url="",
                        log_url="",
                        environment_url="",
                        created_at=iso(),
                        creator=emu.bot_login,
                    )
                )


_INACCESSIBLE_REPOS = (
    "There is at least one repository that does not exist or is not accessible to the parent "
    "installation."
)


def _comment_limit(body: JSON) -> None:
    text = body.get("body")
    if isinstance(text, str) and len(text) > COMMENT_BODY_LIMIT:
        raise validation_failed(
            "IssueComment",
            "body",
            f"body is too long (maximum is {COMMENT_BODY_LIMIT} characters)",
            code="custom",
        )


def _check_run_limits(body: JSON) -> None:
    output = body.get("output")
    if isinstance(output, dict):
        for name in ("summary", "text"):
            value = output.get(name)
            if isinstance(value, str) and len(value) > CHECK_OUTPUT_LIMIT:
                raise validation_failed(
                    "CheckRun",
                    f"output.{name}",
                    f"Only {CHECK_OUTPUT_LIMIT} characters are allowed; "
                    f"{len(value)} were supplied.",
                )
        annotations = output.get("annotations")
        if isinstance(annotations, list) and len(annotations) > ANNOTATIONS_PER_REQUEST:
            raise validation_failed(
                "CheckRun",
                "output.annotations",
                f"Only {ANNOTATIONS_PER_REQUEST} annotations are allowed per request; "
                f"{len(annotations)} were supplied.",
            )
    actions = body.get("actions")
    if isinstance(actions, list):
        if len(actions) > MAX_ACTIONS:
            raise validation_failed(
                "CheckRun",
                "actions",
                f"Only {MAX_ACTIONS} actions are allowed; {len(actions)} were supplied.",
            )
        limits = (
            ("label", ACTION_LABEL_LIMIT),
            ("identifier", ACTION_IDENTIFIER_LIMIT),
            ("description", ACTION_DESCRIPTION_LIMIT),
        )
        for i, action in enumerate(actions):
            if not isinstance(action, dict):
                raise validation_failed("CheckRun", f"actions[{i}]", "is not an object.")
            for name, limit in limits:
                value = action.get(name)
                if not isinstance(value, str):
                    raise validation_failed(
                        "CheckRun",
                        f"actions[{i}].{name}",
                        f"{name} wasn't supplied.",
                        "missing_field",
                    )
                if len(value) > limit:
                    raise validation_failed(
                        "CheckRun",
                        f"actions[{i}].{name}",
                        f"{name} is too long (maximum is {limit} characters); "
                        f"{len(value)} were supplied.",
                    )


_LIMITS: dict[str, Callable[[JSON], None]] = {
    "checks/create": _check_run_limits,
    "checks/update": _check_run_limits,
    "issues/create-comment": _comment_limit,
    "issues/update-comment": _comment_limit,
}


def _apply_check_run(run: CheckRun, body: JSON, *, creating: bool) -> None:
    """Apply a create or update body to a check run (lock held); validates before changing."""
    status = body.get("status")
    conclusion = body.get("conclusion")
    if conclusion is not None and conclusion not in CHECK_CONCLUSIONS:
        raise validation_failed("CheckRun", "conclusion", "conclusion is not included in the list")
    if conclusion is None and (
        (status == "completed" and run.conclusion is None)
        or (creating and body.get("completed_at"))
    ):
        # "conclusion: Required if you provide completed_at or a status of completed."
        raise validation_failed(
            "CheckRun",
            "conclusion",
            "conclusion wasn't supplied: it is required with completed_at or status completed.",
            "missing_field",
        )
    for name in ("name", "details_url", "external_id", "started_at"):
        if isinstance(body.get(name), str):
            setattr(run, name, body[name])
    if conclusion is not None:
        # "Providing conclusion will automatically set the status parameter to completed."
        run.status = "completed"
        run.conclusion = conclusion
        run.completed_at = body.get("completed_at") or run.completed_at or iso()
    elif status == "completed":
        run.status = "completed"
    elif isinstance(status, str):
        run.status = status
        run.conclusion = None
        run.completed_at = None
    output = body.get("output")
    if isinstance(output, dict):
        for name in ("title", "summary", "text"):
            if isinstance(output.get(name), str):
                setattr(run, name, output[name])
        annotations = output.get("annotations")
        if isinstance(annotations, list):
            # "annotations are appended to the list of annotations that already exist".
            run.annotations.extend(a for a in annotations if isinstance(a, dict))
    actions = body.get("actions")
    if isinstance(actions, list):
        run.actions = [dict(a) for a in actions if isinstance(a, dict)]


def _wrap_base64(data: bytes) -> str:
    # The contents API wraps base64 at 60 characters, each line ending in a newline.
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))
