"""POST /api/v1/metrics: a CI job uploads a metrics file for a commit, with its repo's token."""

from __future__ import annotations

import re
import time

import redis
from flask import Blueprint, Response, request

from bot.core.metrics import parse_metrics
from bot.errors import MetricsFileError
from bot.state import production_uploads, queues, upload_tokens, uploads
from bot.web.answers import answer
from bot.web.services import services

bp = Blueprint("api", __name__, url_prefix="/api/v1")
SUBJECT = "metrics upload"
# An environment's name becomes part of a Redis key and an issue marker.
ENV_NAME = re.compile(r"[A-Za-z0-9._-]{1,50}")


def _answer(status: int, message: str, **extra: object) -> Response:
    response = answer(status, message, subject=SUBJECT, **extra)
    if status == 401:
        # RFC 6750 section 3: a 401 names the scheme the client should use.
        response.headers["WWW-Authenticate"] = 'Bearer realm="mlgate"'
    return response


def too_large() -> Response:
    return _answer(413, f"payload too large: over {uploads.UPLOAD_LIMIT} bytes (1 MiB) of metrics")


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


@bp.post("/metrics")
def metrics() -> Response:
    """Store one metrics file for (repo, sha, run); the token must be one of `repo`'s.

    Checked in this order: size (413), `repo` (400, it names the token's repository), token
    (401), `sha`, `run` and `path` (400), the document itself (400); then stored (201).
    """
    if request.content_length is not None and request.content_length > uploads.UPLOAD_LIMIT:
        return too_large()
    # A chunked body has no Content-Length. Werkzeug stops reading at max_content_length
    # without telling whether more followed; reading one byte more tells (checked below).
    request.max_content_length = uploads.UPLOAD_LIMIT + 1
    args = request.args
    if not args.get("repo"):
        return _answer(400, "missing parameter: repo (owner/name)")
    repo = upload_tokens.canonical_repo(args["repo"])
    if repo is None:
        return _answer(400, "malformed parameter: repo must be owner/name")
    token = _bearer_token()
    if token is None:
        return _answer(401, "missing token: send Authorization: Bearer <token>", repo=repo)
    conn = services().redis
    try:
        authentic = upload_tokens.authenticate(conn, repo, token)
    except redis.RedisError as exc:
        return _answer(503, f"redis unavailable: {type(exc).__name__}; retry later", repo=repo)
    if not authentic:
        return _answer(
            401,
            f"bad token: not a metrics upload token of {repo} "
            f"(an operator creates one with `mlgate token create {repo}`)",
            repo=repo,
        )
    env = args.get("env")
    if env is not None and not ENV_NAME.fullmatch(env):
        return _answer(
            400, "malformed parameter: env must be 1-50 letters, digits, '.', '_' or '-'", repo=repo
        )
    # Live metrics of a deployed commit need no CI run to belong to.
    for name in ("sha",) if env else ("sha", "run"):
        if not args.get(name):
            return _answer(400, f"missing parameter: {name}", repo=repo)
    sha = uploads.check_sha(args["sha"])
    if sha is None:
        return _answer(400, "malformed parameter: sha must be 40 hex digits", repo=repo)
    run = uploads.check_run(args.get("run", "live"))
    if run is None:
        return _answer(
            400,
            "malformed parameter: run must be 1-100 letters, digits, '.', '_' or '-'",
            repo=repo,
        )
    path = uploads.check_path(args.get("path", uploads.DEFAULT_PATH))
    if path is None:
        return _answer(
            400, "malformed parameter: path must be a file path inside the repository", repo=repo
        )
    extra = {"repo": repo, "sha": sha, "run": run, "path": path}
    # Never request.form: curl's --data-binary says form-urlencoded, but the body is the file.
    body = request.get_data(cache=False)
    if len(body) > uploads.UPLOAD_LIMIT:
        return too_large()
    try:
        values = parse_metrics(body, path)
    except MetricsFileError as exc:
        return _answer(400, f"malformed metrics: {exc}", **extra)
    if not values or "" in values:
        return _answer(
            400,
            f"malformed metrics: {path} holds no metrics; expected an object of numbers and "
            "strings, as dvc metrics show reads it",
            **extra,
        )
    try:
        if env:
            production_uploads.record(conn, repo, env, sha, path, values, time.time())
            queues.enqueue_monitor_check(conn, repo, env)
        else:
            uploads.store_upload(conn, repo, sha, run, path, values, time.time())
    except redis.RedisError as exc:
        return _answer(503, f"redis unavailable: {type(exc).__name__}; retry later", **extra)
    if env:
        return _answer(
            201, f"stored: {len(values)} metrics of {path} for {repo} in {env} at {sha}", **extra
        )
    return _answer(
        201, f"stored: {len(values)} metrics of {path} for {repo}@{sha} run {run}", **extra
    )
