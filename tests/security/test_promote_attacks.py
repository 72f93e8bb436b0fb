"""`/promote` and the `/retrain` matrix under attack: who may promote, onto which branch, which
candidate names are read at all, and matrix values that try to reach a shell."""

from __future__ import annotations

import pytest

from bot import sample
from bot.core.config import parse_config
from bot.core.experiment_matrix import Matrix, build_matrix
from bot.core.pr_facts import PullRequest
from bot.core.retrain_outputs import REGULAR, OutputChange
from bot.emulator import GitHubEmulator
from bot.runs import promotion
from bot.runs.context import Context
from bot.settings import Settings
from bot.state import audit, candidates
from bot.state.candidates import CandidateOutputs, CandidateResult, MatrixRecord
from tests.support import Bot, pull_request_event
from tests.test_experiment_matrix_flow import (
    CONFIG,
    REPO,
    create_repo,
    head_of,
    model_dvc,
    open_pr,
    replies,
    report,
    say,
)

PROMOTED = model_dvc("random_forest", 50)


def finished_matrix(bot: Bot, emulator: GitHubEmulator, number: int) -> MatrixRecord:
    """A matrix of two candidates on the PR's head, both passed, c2 with a changed model
    pointer to promote: as the runs would leave it, without running them."""
    config = parse_config(CONFIG)
    matrix = build_matrix(
        "model=xgboost,random_forest epochs=50",
        config.retrain.parameters,
        config.retrain.max_candidates,
    )
    assert isinstance(matrix, Matrix)
    head = head_of(emulator, number)
    record = MatrixRecord("m1", head, "alice", None, matrix.as_json())
    candidates.record_matrix(bot.conn, REPO, number, record)
    info = emulator.repo(REPO).git.commit_info(head)
    assert info is not None
    for n in (1, 2):
        candidates.set_result(bot.conn, REPO, number, "m1", n, CandidateResult("passed", 0.91))
    change = OutputChange("models/model.dvc", REGULAR, PROMOTED.encode())
    outputs = CandidateOutputs(info.tree, (change,))
    candidates.save_outputs(bot.conn, REPO, number, "m1", 2, outputs)
    return record


@pytest.fixture
def pr(bot: Bot, emulator: GitHubEmulator) -> int:
    create_repo(emulator)
    number = open_pr(bot, emulator)
    finished_matrix(bot, emulator, number)
    return number


def fork_pr(bot: Bot, emulator: GitHubEmulator) -> int:
    create_repo(emulator)
    emulator.fork_repo(REPO, "mallory")
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS, source="run")
    emulator.repo("mallory/model").commit("feature", {"dvc.lock": better["dvc.lock"]})
    pull = emulator.open_pull_request(
        REPO, head="feature", base="main", user="mallory", head_repo="mallory/model"
    )
    number = int(pull["number"])
    assert bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened")) == 202
    return number


@pytest.mark.parametrize("user", ["rita", "mallory"])
def test_a_reader_or_an_outsider_cannot_promote(
    bot: Bot, emulator: GitHubEmulator, pr: int, user: str
) -> None:
    emulator.add_user("mallory")
    before = head_of(emulator, pr)
    say(bot, pr, "/promote c2", user)
    assert f"@{user}, `/promote` needs write permission or more" in replies(emulator, pr)[-1]
    assert head_of(emulator, pr) == before
    assert audit.entries(bot.conn, REPO)[-1].kind == "refuse"


def test_the_fork_author_cannot_promote_and_a_maintainer_cannot_write_to_the_fork(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = fork_pr(bot, emulator)
    finished_matrix(bot, emulator, number)
    fork_head = emulator.repo("mallory/model").head("feature")

    say(bot, number, "/promote c2", "mallory")
    assert "@mallory, `/promote` needs write permission or more" in replies(emulator, number)[-1]
    say(bot, number, "/promote c2", "ada")
    reply = replies(emulator, number)[-1]
    assert "@ada, c2 was not promoted: this PR's branch is in a fork" in reply
    assert "mlgate never writes to a fork" in reply
    assert emulator.repo("mallory/model").head("feature") == fork_head
    assert head_of(emulator, number) == fork_head
    assert emulator.repo(REPO).git.branch_sha("feature") is None  # nothing pushed to the base
    last = audit.entries(bot.conn, REPO)[-1]
    assert (last.kind, last.detail) == ("promote-refused", "c2: fork")


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("/promote c0", "/promote takes one candidate of the leaderboard"),
        ("/promote c-1", "/promote takes one candidate of the leaderboard"),
        ("/promote c1; rm -rf ~", "/promote takes one candidate of the leaderboard"),
        ("/promote c2 $(id)", "/promote takes one candidate of the leaderboard"),
        ("/promote ../c2", "/promote takes one candidate of the leaderboard"),
        ("/promote c99", "there is no c99: this PR's candidates are c1…c2."),
        ("/promote c1", "c1 changed none of the files in `retrain.outputs`"),
    ],
)
def test_a_candidate_that_is_malformed_out_of_range_or_empty_commits_nothing(
    bot: Bot, emulator: GitHubEmulator, pr: int, line: str, answer: str
) -> None:
    before = head_of(emulator, pr)
    # c1 ran but changed nothing: it has no outputs kept.
    candidates.save_outputs(bot.conn, REPO, pr, "m1", 1, CandidateOutputs("", ()))
    say(bot, pr, line, "alice")
    assert answer in replies(emulator, pr)[-1]
    assert head_of(emulator, pr) == before
    assert emulator.repo(REPO).head("feature") == before


def test_a_running_or_failed_candidate_is_not_promoted(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    before = head_of(emulator, pr)
    candidates.set_result(bot.conn, REPO, pr, "m1", 1, CandidateResult("running"))
    failed = CandidateResult("failed", reason="`python3 train.py` exited with 3")
    candidates.set_result(bot.conn, REPO, pr, "m1", 2, failed)
    say(bot, pr, "/promote c1", "alice")
    assert (
        "c1 is still running; promote it once the leaderboard shows its result"
        in (replies(emulator, pr)[-1])
    )
    say(bot, pr, "/promote c2", "alice")
    assert "c2 failed without a result" in replies(emulator, pr)[-1]
    assert head_of(emulator, pr) == before


def test_a_push_between_reading_the_pr_and_moving_its_branch_is_never_overwritten(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    gh = Context(Settings.from_env(), bot.conn).github.client(42)
    pull = gh.get_pull(REPO, pr)
    seen = PullRequest.from_api(pull, emulator.repository(REPO))
    # Someone pushes after mlgate read the PR, before it moves the branch.
    pushed = emulator.repo(REPO).commit("feature", {"README.md": "# pushed meanwhile\n"})

    promoted = promotion.promote(gh, bot.conn, seen, pull, "c2")
    assert promoted.commit is None
    assert "GitHub refused the commit: the branch `feature` moved since" in promoted.answer
    assert "Nothing was changed." in promoted.answer
    assert emulator.repo(REPO).head("feature") == pushed


def test_matrix_values_reach_the_run_as_text_never_through_a_shell(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    create_repo(emulator)
    number = open_pr(bot, emulator)
    say(bot, number, "/retrain tag='$(touch pwned)',\"; echo hacked `id`\" epochs=50", "alice")
    record = candidates.matrix(bot.conn, REPO, number)
    assert record is not None
    kept = [candidates.load_outputs(bot.conn, REPO, number, record.id, n) for n in (1, 2)]
    written = [o.changes[0].content for o in kept if o is not None]
    # A shell would have run `$(…)` and `id`, and ended the value at `;`: the run saw the text.
    assert written == [
        model_dvc("xgboost", 50, "$(touch pwned)").encode(),
        model_dvc("xgboost", 50, "; echo hacked `id`").encode(),
    ]
    body = report(emulator, number)["body"]
    assert "`` tag=; echo hacked `id` ``" in body  # shown only inside a code span
