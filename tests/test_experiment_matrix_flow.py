"""The `/retrain` experiment matrix end to end on the emulator, real Redis, real git and the
sandbox: candidates run one at a time, the leaderboard ranks them, `/promote` commits one."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.job import Job

from bot import sample
from bot.core.report import parse_data
from bot.emulator import GitHubEmulator
from bot.runs.evaluation_queue import EVALUATE
from bot.state import audit, candidates
from bot.state.queues import EVENTS, RUNS, run_job_id
from tests.support import Bot, bot_replies, comment_event, pull_request_event, run_jobs

REPO = "octo/model"
CONFIG = """\
version: 1
metrics: {source: run}
evaluate: {run: python3 evaluate.py, timeout: 1m}
retrain:
  runner: local
  run: python3 train.py
  outputs: ["models/*.dvc"]
  max_candidates: 4
  parameters:
    model: {type: string, choices: [xgboost, random_forest, broken], default: xgboost}
    epochs: {type: int, min: 1, max: 500, default: 30}
    tag: {type: string, default: ""}
gates:
  accuracy: {min: 0.912}
"""
# Training writes a model pointer that names what it was given; `broken` diverges.
TRAIN = """\
import hashlib, os, sys
model, epochs = os.environ["MLGATE_PARAM_MODEL"], os.environ["MLGATE_PARAM_EPOCHS"]
tag = os.environ["MLGATE_PARAM_TAG"]
if model == "broken":
    print("training diverged: loss is nan", file=sys.stderr)
    sys.exit(3)
digest = hashlib.md5(f"{model}-{epochs}".encode()).hexdigest()
os.makedirs("models", exist_ok=True)
if tag == "huge":
    with open("models/huge.dvc", "w") as f:
        f.write("#" * (6 * 1024 * 1024))
with open("models/model.dvc", "w") as f:
    f.write(f"# {model} {epochs} {tag}\\nouts:\\n- md5: {digest}\\n  path: model.pkl\\n")
print("trained", model, "for", epochs, "epochs")
"""
MODEL_DVC = "outs:\n- md5: 00000000000000000000000000000000\n  path: model.pkl\n"
ROLES = {"ada": "admin", "alice": "write", "rita": "read"}


def model_dvc(model: str, epochs: int, tag: str = "") -> str:
    """What train.py writes for these parameters."""
    digest = hashlib.md5(f"{model}-{epochs}".encode()).hexdigest()
    return f"# {model} {epochs} {tag}\nouts:\n- md5: {digest}\n  path: model.pkl\n"


def create_repo(emulator: GitHubEmulator) -> None:
    # /promote writes through the Git Data API: the App needs Contents: read & write.
    emulator.add_installation(
        42, "octo", permissions={**emulator.installation_permissions, "contents": "write"}
    )
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="run")
    files |= {".github/mlgate.yml": CONFIG, "train.py": TRAIN, "models/model.dvc": MODEL_DVC}
    emulator.create_repo(REPO, installation_id=42, files=files)
    for user, role in ROLES.items():
        emulator.set_permission(REPO, user, role)


def open_pr(bot: Bot, emulator: GitHubEmulator, branch: str = "feature") -> int:
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS, source="run")
    emulator.repo(REPO).commit(branch, {n: better[n] for n in ("dvc.lock", "data/features.csv")})
    number = int(emulator.open_pull_request(REPO, head=branch, base="main", user="alice")["number"])
    assert bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened")) == 202
    return number


@pytest.fixture
def pr(bot: Bot, emulator: GitHubEmulator) -> int:
    create_repo(emulator)
    return open_pr(bot, emulator)


def say(bot: Bot, number: int, body: str, user: str) -> dict[str, Any]:
    event = comment_event(bot.emulator, REPO, number, body, user)
    assert bot.deliver("issue_comment", event) == 202
    comment: dict[str, Any] = event["comment"]
    return comment


def say_only(bot: Bot, number: int, body: str, user: str) -> None:
    """Comment, and let only the `events` worker answer: runs it queues wait on `runs`."""
    event = comment_event(bot.emulator, REPO, number, body, user)
    assert bot.emulator.send_webhook("issue_comment", event) == 202
    run_events(bot.conn)


def run_events(conn: redis.Redis) -> None:
    SimpleWorker([Queue(EVENTS, connection=conn)], connection=conn).work(burst=True)


def replies(emulator: GitHubEmulator, number: int) -> list[str]:
    return bot_replies(emulator, REPO, number)


def report(emulator: GitHubEmulator, number: int) -> dict[str, Any]:
    body = next(c["body"] for c in emulator.comments(REPO, number) if "mlgate:report" in c["body"])
    data = parse_data(body)
    assert data is not None
    return data | {"body": body}


def board(emulator: GitHubEmulator, number: int) -> list[tuple[str, int | None, str]]:
    shown = report(emulator, number)["leaderboard"]["candidates"]
    return [(c["candidate"], c["rank"], c["status"]) for c in shown]


def quality_runs(emulator: GitHubEmulator, sha: str) -> list[dict[str, Any]]:
    return [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/quality"]


def head_of(emulator: GitHubEmulator, number: int) -> str:
    return str(emulator.pull_request(REPO, number)["head"]["sha"])


def reactions(emulator: GitHubEmulator, comment: dict[str, Any]) -> list[str]:
    return [r["content"] for r in emulator.reactions(comment["id"])]


def test_a_matrix_of_four_ranks_best_first_ties_by_number_and_leaves_the_quality_check(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    head = head_of(emulator, pr)
    [opening] = quality_runs(emulator, head)
    comment = say(bot, pr, "/retrain model=xgboost,random_forest epochs=5,50", "alice")

    # epochs=50 reaches 0.9133 whatever the model (a tie: c2 before c4); epochs=5 reaches
    # 0.91 < 0.912, which fails the gate: those candidates follow, by number.
    assert board(emulator, pr) == [
        ("c2", 1, "passed"),
        ("c4", 2, "passed"),
        ("c1", None, "failed"),
        ("c3", None, "failed"),
    ]
    data = report(emulator, pr)
    best = data["leaderboard"]["candidates"][0]
    assert best["best"] is True and best["value"] == 0.9133
    assert best["parameters"] == {"model": "xgboost", "epochs": "50", "tag": ""}
    assert best["varied"] == {"model": "xgboost", "epochs": "50"}
    assert data["leaderboard"]["rank_by"] == "accuracy"
    assert data["leaderboard"]["head"] == head
    assert data["leaderboard"]["candidates"][2]["failed_gates"] == ["accuracy"]
    body = data["body"]
    assert "#### Leaderboard: 4 candidates by `accuracy` (higher is better)" in body
    assert "| ★ | c2 | `model=xgboost` `epochs=50` | 0.9133 | ✅ 1 passed | passed |" in body
    assert "`/promote c2` commits the outputs of c2 to this branch." in body
    # The head's own evaluation is the verdict: no candidate wrote mlgate/quality.
    assert [r["id"] for r in quality_runs(emulator, head)] == [opening["id"]]
    assert data["head"] == head and data["verdict"] == "passed"
    [reply] = replies(emulator, pr)
    assert "4 candidates (c1…c4) are queued" in reply
    assert reactions(emulator, comment) == ["eyes", "rocket"]
    [entry] = [e for e in audit.entries(bot.conn, REPO) if e.kind == "retrain-matrix"]
    assert entry.user == "alice" and entry.detail.startswith("4 candidates: model=")


def test_a_failed_candidate_shows_why_and_ranks_after_the_others(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    say(bot, pr, "/retrain model=broken,xgboost epochs=50", "alice")
    assert board(emulator, pr) == [("c2", 1, "passed"), ("c1", None, "failed")]
    failed = report(emulator, pr)["leaderboard"]["candidates"][1]
    assert failed["reason"] == "`python3 train.py` exited with 3"
    assert failed["value"] is None
    assert "| failed: `` `python3 train.py` exited with 3 `` |" in report(emulator, pr)["body"]


def test_a_candidate_whose_outputs_are_too_big_to_keep_fails_and_cannot_be_promoted(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    say(bot, pr, '/retrain tag=huge,"" epochs=50', "alice")
    assert board(emulator, pr) == [("c2", 1, "passed"), ("c1", None, "failed")]
    failed = report(emulator, pr)["leaderboard"]["candidates"][1]
    assert failed["reason"].startswith("its changed outputs are 6,291,")
    assert "over the 5,242,880 kept per candidate" in failed["reason"]
    record = candidates.matrix(bot.conn, REPO, pr)
    assert record is not None
    assert candidates.load_outputs(bot.conn, REPO, pr, record.id, 1) is None
    say(bot, pr, "/promote c1", "alice")
    assert "c1 failed without a result" in replies(emulator, pr)[-1]


def test_a_matrix_over_max_candidates_is_refused_with_the_count_and_queues_nothing(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    head = head_of(emulator, pr)
    comment = say(bot, pr, "/retrain model=xgboost,random_forest,broken epochs=5,50", "alice")
    [reply] = replies(emulator, pr)
    assert "6 candidates > max_candidates 4" in reply
    assert "was not run" in reply
    assert reactions(emulator, comment) == ["confused"]
    assert candidates.matrix(bot.conn, REPO, pr) is None
    assert len(quality_runs(emulator, head)) == 1  # the opening's only
    assert "leaderboard" not in report(emulator, pr)


def test_a_writer_promotes_a_candidate_and_the_new_head_is_evaluated(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    before = head_of(emulator, pr)
    say(bot, pr, "/retrain model=xgboost,random_forest epochs=50", "alice")
    comment = say(bot, pr, "/promote c2", "alice")

    after = head_of(emulator, pr)
    assert after != before
    git = emulator.repo(REPO).git
    info = git.commit_info(after)
    assert info is not None and info.parents == (before,)
    assert info.message.startswith("Promote candidate c2 (model=random_forest)")
    # Exactly the candidate's outputs: its model pointer, nothing else.
    assert {c.filename: c.status for c in git.diff(before, after)} == {
        "models/model.dvc": "modified"
    }
    entry = git.entry(after, "models/model.dvc")
    assert entry is not None and git.blob(entry.sha) == model_dvc("random_forest", 50).encode()
    assert emulator.repo(REPO).head("feature") == after
    reply = replies(emulator, pr)[-1]
    assert reply.startswith(
        f"@alice committed c2 (`model=random_forest`) to `feature` as {after[:7]}"
    )
    assert reactions(emulator, comment) == ["eyes", "rocket"]
    [promoted] = [e for e in audit.entries(bot.conn, REPO) if e.kind == "promote"]
    assert (promoted.user, promoted.sha) == ("alice", before)
    assert promoted.detail == f"c2 as {after[:7]}: model=random_forest"

    # GitHub tells of the moved branch with `synchronize`; the emulator leaves that to us.
    bot.deliver("pull_request", pull_request_event(emulator, REPO, pr, "synchronize"))
    [evaluated] = quality_runs(emulator, after)
    assert evaluated["conclusion"] == "success"
    data = report(emulator, pr)
    assert data["head"] == after
    # The candidates were of the old head: superseded now, and not promotable again.
    assert [status for _, _, status in board(emulator, pr)] == ["superseded", "superseded"]
    say(bot, pr, "/promote c1", "alice")
    assert f"c1 is superseded: it was trained on {before[:7]}" in replies(emulator, pr)[-1]
    assert head_of(emulator, pr) == after


def test_a_reader_cannot_promote(bot: Bot, emulator: GitHubEmulator, pr: int) -> None:
    before = head_of(emulator, pr)
    say(bot, pr, "/retrain model=xgboost,random_forest epochs=50", "alice")
    comment = say(bot, pr, "/promote c1", "rita")
    assert "@rita, `/promote` needs write permission or more" in replies(emulator, pr)[-1]
    assert reactions(emulator, comment) == ["confused"]
    assert head_of(emulator, pr) == before


def test_a_push_supersedes_the_candidates_still_queued(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    say_only(bot, pr, "/retrain model=xgboost,random_forest epochs=5,50", "alice")
    record = candidates.matrix(bot.conn, REPO, pr)
    assert record is not None
    # A push before any candidate ran: GitHub's synchronize is handled first.
    emulator.repo(REPO).commit("feature", {"README.md": "# sample-model\n\nMore words.\n"})
    event = pull_request_event(emulator, REPO, pr, "synchronize")
    assert emulator.send_webhook("pull_request", event) == 202
    run_jobs(bot.conn)

    found = candidates.results(bot.conn, REPO, pr, record.id)
    assert {n: r.status for n, r in found.items()} == {
        1: "queued",
        2: "queued",
        3: "queued",
        4: "queued",
    }
    assert candidates.load_outputs(bot.conn, REPO, pr, record.id, 1) is None  # c1 never ran
    assert not Queue(RUNS, connection=bot.conn).count  # and queued no c2
    assert board(emulator, pr) == [(f"c{n}", None, "superseded") for n in range(1, 5)]
    assert "the PR has moved on, so they are superseded" in report(emulator, pr)["body"]
    say(bot, pr, "/promote c1", "alice")
    assert "c1 is superseded" in replies(emulator, pr)[-1]


def test_another_prs_evaluation_runs_before_the_next_candidate(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    say_only(bot, pr, "/retrain model=xgboost,random_forest epochs=50", "alice")
    record = candidates.matrix(bot.conn, REPO, pr)
    assert record is not None
    # PR B opens while A's c1 waits: its evaluation is queued behind c1, and c2 is not queued
    # yet, so B does not wait for A's whole matrix.
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS, source="run")
    emulator.repo(REPO).commit("other", {"data/features.csv": better["data/features.csv"]})
    other = int(emulator.open_pull_request(REPO, head="other", base="main", user="alice")["number"])
    assert (
        emulator.send_webhook("pull_request", pull_request_event(emulator, REPO, other, "opened"))
        == 202
    )
    run_events(bot.conn)
    run_jobs(bot.conn)

    head_a, head_b = head_of(emulator, pr), head_of(emulator, other)
    ids = {
        "A c1": run_job_id(f"candidate-{record.id}-1", REPO, pr, head_a),
        "B": run_job_id(EVALUATE, REPO, other, head_b),
        "A c2": run_job_id(f"candidate-{record.id}-2", REPO, pr, head_a),
    }
    started: dict[str, datetime] = {}
    for name, job_id in ids.items():
        at = Job.fetch(job_id, connection=bot.conn).started_at
        assert at is not None, f"{name} never ran"
        started[name] = at
    # One worker ran them, one after the other: the order they started is the queue's.
    assert sorted(started, key=lambda name: started[name]) == ["A c1", "B", "A c2"]
    assert [status for _, _, status in board(emulator, pr)] == ["passed", "passed"]
