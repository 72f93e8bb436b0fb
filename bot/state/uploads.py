"""Metrics uploaded by CI jobs, bound to (repository, commit, run, file), and how to read them."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping

import redis

from bot.core.metrics import MetricValue
from bot.state.redis_conn import key, text
from bot.state.upload_tokens import require_repo

# A metrics document is a few KB; 1 MiB (1,048,576 bytes) refuses a model or a dataset sent
# by mistake (`--data-binary @model.pkl`) long before it costs Redis memory.
UPLOAD_LIMIT = 1024 * 1024
# Long enough for a pull request to stay open and be re-evaluated; the evaluator keeps its own
# baselines, so nothing depends on an upload for longer.
UPLOAD_TTL = 30 * 24 * 3600
DEFAULT_PATH = "metrics.json"

_SHA = re.compile(r"[0-9a-fA-F]{40}")
# A run id becomes part of a Redis key: no `:` (the key separator), nothing unprintable.
_RUN = re.compile(r"[A-Za-z0-9._-]{1,100}")
_PATH_LIMIT = 255


def check_sha(value: str) -> str | None:
    """A full commit sha, lower-cased; None for anything else (short shas are ambiguous)."""
    return value.lower() if _SHA.fullmatch(value) else None


def check_run(value: str) -> str | None:
    return value if _RUN.fullmatch(value) else None


def check_path(value: str) -> str | None:
    """A metrics file path relative to the repository root (`eval/metrics.yaml`), or None."""
    if not value or len(value) > _PATH_LIMIT or "\\" in value:
        return None
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return None
    path = posixpath.normpath(value)
    if posixpath.isabs(path) or path == "." or path == ".." or path.startswith("../"):
        return None
    return path


def upload_key(repo: str, sha: str, run: str) -> str:
    """A hash of file path → JSON of that file's flattened metrics."""
    return key("upload", require_repo(repo), sha.lower(), run)


def index_key(repo: str, sha: str) -> str:
    """A sorted set of the runs that uploaded metrics for a commit, scored by upload time."""
    return key("uploads", require_repo(repo), sha.lower())


def store_upload(
    conn: redis.Redis,
    repo: str,
    sha: str,
    run: str,
    path: str,
    metrics: Mapping[str, MetricValue],
    now: float,
) -> None:
    """Store one file's metrics for (repo, sha, run); a second upload of the file replaces it.

    Both keys get their TTL renewed in the same transaction, so the index never outlives the
    newest run it names.
    """
    upload, index = upload_key(repo, sha, run), index_key(repo, sha)
    with conn.pipeline(transaction=True) as pipe:
        pipe.hset(upload, path, json.dumps(dict(metrics)))
        pipe.expire(upload, UPLOAD_TTL)
        pipe.zadd(index, {run: now})
        pipe.expire(index, UPLOAD_TTL)
        pipe.execute()


def uploaded_runs(conn: redis.Redis, repo: str, sha: str) -> list[str]:
    """The runs that uploaded metrics for `sha`, the most recent upload last."""
    runs: list[bytes] = conn.zrange(index_key(repo, sha), 0, -1)  # type: ignore[assignment]
    return [text(run) for run in runs]


def uploaded_metrics(
    conn: redis.Redis, repo: str, sha: str, run: str | None = None
) -> dict[str, dict[str, MetricValue]]:
    """`{path: {dotted key: value}}` uploaded for `sha` by `run`, or by the latest run.

    "Latest" is the run with the most recent upload: a re-run supersedes the one before, and
    files of different runs are never mixed. Empty when nothing (or nothing unexpired) was
    uploaded.
    """
    if run is None:
        runs = uploaded_runs(conn, repo, sha)
        if not runs:
            return {}
        run = runs[-1]
    stored = conn.hgetall(upload_key(repo, sha, run))
    return {text(path): json.loads(value) for path, value in sorted(stored.items())}
