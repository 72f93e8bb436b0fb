"""A PR's `/retrain` matrix: its candidates, each one's result, and each finished one's outputs."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from bot.core.retrain_outputs import OutputChange
from bot.state.pr_heads import PR_STATE_TTL
from bot.state.redis_conn import key, text

# Outputs wait for a /promote a week: a PR reviewed later retrains again.
OUTPUTS_TTL = 7 * 24 * 3600
# What one candidate may leave to promote (its changed `retrain.outputs`, all files): outputs
# are pointers and small files, DVC keeps the large ones; 64 candidates stay under 320 MiB.
MAX_CANDIDATE_OUTPUT_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class MatrixRecord:
    """One `/retrain` matrix on one PR head: who asked, in which comment, and its candidates
    (`Matrix.as_json`: `candidate`, `parameters`, `varied`), c1 first."""

    id: str
    head_sha: str
    user: str
    comment_id: int | None
    candidates: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class CandidateResult:
    """Where one candidate stands: `queued`, `running`, or done (`passed`, `failed`) with its
    rank_by value and spread, its gate results (as `GateResult` dicts) and, for a run that did
    not give a result, the `reason`."""

    status: str
    value: float | None = None
    spread: float | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("passed", "failed")


@dataclass(frozen=True)
class CandidateOutputs:
    """A finished candidate's changed outputs and the tree of the head it ran on."""

    base_tree: str
    changes: tuple[OutputChange, ...]


def _matrix_key(repo: str, number: int) -> str:
    return key("matrix", repo.lower(), number)


def _results_key(repo: str, number: int, matrix_id: str) -> str:
    return key("matrix-results", repo.lower(), number, matrix_id)


def _outputs_key(repo: str, number: int, matrix_id: str, candidate: int) -> str:
    return key("matrix-outputs", repo.lower(), number, matrix_id, candidate)


def record_matrix(conn: redis.Redis, repo: str, number: int, record: MatrixRecord) -> None:
    """Make `record` the PR's matrix, every candidate queued; an earlier matrix is replaced
    (its runs still queued end as soon as they start)."""
    queued = json.dumps(asdict(CandidateResult("queued")))
    with conn.pipeline(transaction=True) as pipe:
        pipe.set(_matrix_key(repo, number), json.dumps(asdict(record)), ex=PR_STATE_TTL)
        results = _results_key(repo, number, record.id)
        pipe.delete(results)
        pipe.hset(results, mapping={str(n): queued for n in range(1, len(record.candidates) + 1)})
        pipe.expire(results, PR_STATE_TTL)
        pipe.execute()


def matrix(conn: redis.Redis, repo: str, number: int) -> MatrixRecord | None:
    """The PR's last matrix; None if it has none (or it expired)."""
    raw = conn.get(_matrix_key(repo, number))
    if raw is None:
        return None
    return MatrixRecord(**json.loads(text(raw)))


def set_result(
    conn: redis.Redis,
    repo: str,
    number: int,
    matrix_id: str,
    candidate: int,
    result: CandidateResult,
) -> None:
    conn.hset(_results_key(repo, number, matrix_id), str(candidate), json.dumps(asdict(result)))


def results(
    conn: redis.Redis, repo: str, number: int, matrix_id: str
) -> dict[int, CandidateResult]:
    """Each candidate's result by number."""
    raw: Mapping[bytes, bytes] = conn.hgetall(_results_key(repo, number, matrix_id))  # type: ignore[assignment]
    return {int(text(n)): CandidateResult(**json.loads(text(v))) for n, v in raw.items()}


def output_size(changes: Sequence[OutputChange]) -> int:
    return sum(len(c.content) for c in changes if c.content is not None)


def save_outputs(
    conn: redis.Redis,
    repo: str,
    number: int,
    matrix_id: str,
    candidate: int,
    outputs: CandidateOutputs,
) -> None:
    """Keep a finished candidate's outputs for `/promote`; the caller keeps them under
    MAX_CANDIDATE_OUTPUT_BYTES."""
    assert output_size(outputs.changes) <= MAX_CANDIDATE_OUTPUT_BYTES
    files = [
        {
            "path": c.path,
            "mode": c.mode,
            "content": base64.b64encode(c.content).decode() if c.content is not None else None,
        }
        for c in outputs.changes
    ]
    value = json.dumps({"base_tree": outputs.base_tree, "files": files})
    conn.set(_outputs_key(repo, number, matrix_id, candidate), value, ex=OUTPUTS_TTL)


def load_outputs(
    conn: redis.Redis, repo: str, number: int, matrix_id: str, candidate: int
) -> CandidateOutputs | None:
    """The kept outputs of a candidate; None once they expired."""
    raw = conn.get(_outputs_key(repo, number, matrix_id, candidate))
    if raw is None:
        return None
    stored = json.loads(text(raw))
    changes = tuple(
        OutputChange(
            f["path"],
            f["mode"],
            base64.b64decode(f["content"]) if f["content"] is not None else None,
        )
        for f in stored["files"]
    )
    return CandidateOutputs(str(stored["base_tree"]), changes)
