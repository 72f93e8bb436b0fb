"""The retrain loop with `retrain.runner: semaphore`: mlgate starts the pipeline on the pushed
commit with MLGATE_RETRAIN_BRANCH, the pipeline pushes that branch itself, and mlgate opens
(or moves) the one retrain PR when the pipeline passes. The tests play the pipeline's part on
the emulators: they push the branch to the GitHub emulator, then end the Semaphore pipeline."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import redis

from bot.emulator import GitHubEmulator
from bot.emulator.semaphore_emulator import EmulatedWorkflow, SemaphoreEmulator
from bot.runs import retrain_decisions as decide
from bot.state import audit, deploys, retrain_lines, retrain_pulls, semaphore_runs
from tests.support import SEMAPHORE_PROJECT, SEMAPHORE_SECRET, Bot, github_event, run_jobs
from tests.test_retrain_loop import (
    ENGINEER,
    INSTALLATION,
    REPO,
    images_dvc,
    only_pull,
    pulls,
    push_data,
    trained,
)
from workers import jobs

pytestmark = pytest.mark.usefixtures("semaphore")
CONFIG = f"""\
version: 1
semaphore:
  project_id: {SEMAPHORE_PROJECT}
retrain:
  runner: semaphore
  pipeline_file: .semaphore/retrain.yml
  on_data: true
  outputs: [metrics.json, "models/*.dvc"]
"""


@pytest.fixture
def repo(emulator: GitHubEmulator) -> str:
    emulator.add_installation(
        INSTALLATION,
        "octo",
        # mlgate moves the retrain line's branch and opens the PR: Contents: read & write.
        permissions={**emulator.installation_permissions, "contents": "write"},
    )
    files = {
        ".github/mlgate.yml": CONFIG,
        ".semaphore/retrain.yml": "version: v1.0\n",
        "data/images.dvc": images_dvc(100),
        "notes.txt": "trained on 100 images\n",
        **trained(100),
    }
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
    return REPO


def started(sem: SemaphoreEmulator, sha: str) -> EmulatedWorkflow:
    """The one retrain workflow mlgate started on `sha`."""
    found = [w for w in sem.workflows if w.commit_sha == sha]
    assert len(found) == 1, [w.commit_sha for w in sem.workflows]
    return found[0]


def pipeline_pushes(
    emulator: GitHubEmulator, workflow: EmulatedWorkflow, files: Mapping[str, str | None]
) -> str:
    """What the pipeline's job does: commit its outputs on the retrained commit and push them
    to MLGATE_RETRAIN_BRANCH. Returns the pushed commit."""
    branch = workflow.parameters["MLGATE_RETRAIN_BRANCH"]
    git = emulator.repo(REPO)
    git.create_branch(branch, workflow.commit_sha)
    return git.commit(branch, dict(files), "Retrain", author="semaphore")


def finish(bot: Bot, sem: SemaphoreEmulator, workflow: EmulatedWorkflow, result: str) -> int:
    """The pipeline ends; Semaphore's signed notification reaches mlgate, jobs run."""
    sem.finish_pipeline(workflow.initial_pipeline_id, result)
    payload = sem.pipeline_done_payload(workflow.initial_pipeline_id)
    answer = sem.deliver(f"{bot.url}/webhooks/semaphore", payload, SEMAPHORE_SECRET)
    run_jobs(bot.conn)
    return answer.status_code


def details(conn: redis.Redis) -> list[str]:
    return [e.detail for e in audit.entries(conn, REPO) if e.kind == "retrain"]


def changed(emulator: GitHubEmulator, base: str, head: str) -> dict[str, str]:
    return {c.filename: c.status for c in emulator.repo(REPO).git.diff(base, head)}


def test_a_data_push_starts_the_pipeline_with_the_branch_to_push(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, repo: str
) -> None:
    sha = push_data(bot, emulator, images_dvc(120))

    workflow = started(semaphore, sha)
    assert workflow.reference == "refs/heads/main"
    assert workflow.pipeline_file == ".semaphore/retrain.yml"
    assert workflow.parameters["MLGATE_RETRAIN_BRANCH"] == f"mlgate/retrain-{sha[:7]}"
    assert workflow.parameters["MLGATE_SHA"] == sha
    assert workflow.parameters["MLGATE_REPO"] == REPO
    assert pulls(emulator) == []  # nothing opens before the pipeline passes
    assert details(bot.conn) == [
        f"data push: started the Semaphore pipeline .semaphore/retrain.yml (workflow "
        f"{workflow.id}) to push mlgate/retrain-{sha[:7]}"
    ]


def test_a_passed_pipeline_opens_the_retrain_pr_once_under_duplicates_and_the_poll(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, repo: str
) -> None:
    sha = push_data(bot, emulator, images_dvc(120))
    workflow = started(semaphore, sha)
    head = pipeline_pushes(emulator, workflow, trained(120))

    assert finish(bot, semaphore, workflow, "passed") == 202

    pull = only_pull(emulator)
    # Exactly what the local runner opens: title, branch, label, body, author.
    assert pull["title"] == f"Retrain on new data ({sha[:7]})"
    assert pull["head"]["ref"] == f"mlgate/retrain-{sha[:7]}"
    assert pull["head"]["sha"] == head
    assert pull["user"]["login"] == emulator.bot_login
    assert [label["name"] for label in pull["labels"]] == ["mlgate:retrain"]
    assert f"@{ENGINEER} pushed new data (`data/images.dvc`)" in pull["body"]
    assert "- `metrics.json`\n- `models/model.dvc`\n" in pull["body"]
    assert changed(emulator, sha, head) == {
        "metrics.json": "modified",
        "models/model.dvc": "modified",
    }
    opened = f"data push: opened #{pull['number']} with metrics.json, models/model.dvc"
    assert details(bot.conn)[1:] == [opened]
    saved = retrain_lines.line(bot.conn, REPO)
    assert saved is not None and (saved.number, saved.head_sha) == (pull["number"], head)

    # Semaphore sends a notification again under another id; the poll finds it done too.
    payload = semaphore.pipeline_done_payload(workflow.initial_pipeline_id)
    semaphore.deliver(f"{bot.url}/webhooks/semaphore", payload, SEMAPHORE_SECRET)
    run_jobs(bot.conn)
    assert jobs.poll_semaphore_runs() == {"finished": 1}
    assert only_pull(emulator) == pull
    assert details(bot.conn)[1:] == [opened]
    assert emulator.comments(REPO, pull["number"]) == []


def test_the_poll_ends_a_pipeline_whose_notification_never_came(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, repo: str
) -> None:
    sha = push_data(bot, emulator, images_dvc(120))
    workflow = started(semaphore, sha)
    pipeline_pushes(emulator, workflow, trained(120))
    semaphore.finish_pipeline(workflow.initial_pipeline_id, "passed")

    assert jobs.poll_semaphore_runs() == {"published": 1}
    run_jobs(bot.conn)
    # The notification arriving late publishes nothing more.
    payload = semaphore.pipeline_done_payload(workflow.initial_pipeline_id)
    semaphore.deliver(f"{bot.url}/webhooks/semaphore", payload, SEMAPHORE_SECRET)
    run_jobs(bot.conn)

    pull = only_pull(emulator)
    assert details(bot.conn)[1:] == [
        f"data push: opened #{pull['number']} with metrics.json, models/model.dvc"
    ]


def test_a_second_data_push_moves_the_one_retrain_pr_to_the_new_pipeline_branch(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, repo: str
) -> None:
    first = push_data(bot, emulator, images_dvc(120))
    workflow = started(semaphore, first)
    pipeline_pushes(emulator, workflow, trained(120))
    finish(bot, semaphore, workflow, "passed")
    number = only_pull(emulator)["number"]

    second = push_data(bot, emulator, images_dvc(150))
    workflow = started(semaphore, second)
    assert workflow.parameters["MLGATE_RETRAIN_BRANCH"] == f"mlgate/retrain-{second[:7]}"
    head = pipeline_pushes(emulator, workflow, trained(150))
    finish(bot, semaphore, workflow, "passed")

    pull = only_pull(emulator)
    assert pull["number"] == number
    assert pull["head"]["ref"] == f"mlgate/retrain-{first[:7]}"  # the line's branch, moved
    assert pull["head"]["sha"] == head
    [comment] = emulator.comments(REPO, number)
    assert f"at [`{second[:7]}`]" in comment["body"]
    assert "moved this PR's branch to the new outputs" in comment["body"]
    assert details(bot.conn)[-1] == (
        f"data push: moved #{number} to {second[:7]} with metrics.json, models/model.dvc"
    )
    [listed] = retrain_pulls.open_pulls(bot.conn, REPO)
    assert (listed.number, listed.head_sha) == (number, head)
    assert listed.title == f"Retrain on new data ({first[:7]})"


def test_a_failed_pipeline_fails_mlgate_retrain_and_opens_nothing(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, repo: str
) -> None:
    sha = push_data(bot, emulator, images_dvc(120))
    workflow = started(semaphore, sha)
    semaphore.finish_pipeline(workflow.initial_pipeline_id, "failed", failed_jobs=["train"])
    payload = semaphore.pipeline_done_payload(workflow.initial_pipeline_id)
    semaphore.deliver(f"{bot.url}/webhooks/semaphore", payload, SEMAPHORE_SECRET)
    run_jobs(bot.conn)

    assert pulls(emulator) == []
    [check] = [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/retrain"]
    assert (check["status"], check["conclusion"]) == ("completed", "failure")
    failure = "the Semaphore pipeline failed (block Evaluate: train)"
    assert check["output"]["title"] == f"Retrain failed: {failure}"
    assert f"/workflows/{workflow.id}" in check["output"]["summary"]
    assert details(bot.conn)[1:] == [f"data push: failed: {failure}"]
    assert retrain_pulls.open_pulls(bot.conn, REPO) == []


def test_a_passed_pipeline_that_pushed_nothing_opens_no_pr(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, repo: str
) -> None:
    sha = push_data(bot, emulator, images_dvc(100, salt="b" * 32))
    workflow = started(semaphore, sha)
    finish(bot, semaphore, workflow, "passed")  # no branch pushed

    other = push_data(bot, emulator, images_dvc(100, salt="c" * 32))
    workflow = started(semaphore, other)
    # The branch pushed at the retrained commit itself: the outputs did not change.
    emulator.repo(REPO).create_branch(workflow.parameters["MLGATE_RETRAIN_BRANCH"], other)
    finish(bot, semaphore, workflow, "passed")

    assert pulls(emulator) == []
    assert [d for d in details(bot.conn) if "started" not in d] == [
        f"data push: the pipeline pushed no change to mlgate/retrain-{sha[:7]}; no PR",
        f"data push: the pipeline pushed no change to mlgate/retrain-{other[:7]}; no PR",
    ]
    assert not emulator.check_runs(REPO, sha)


def test_a_pipeline_that_pushed_files_outside_the_outputs_opens_nothing(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, repo: str
) -> None:
    sha = push_data(bot, emulator, images_dvc(120))
    workflow = started(semaphore, sha)
    pipeline_pushes(emulator, workflow, trained(120) | {"train.py": "import os\n"})
    finish(bot, semaphore, workflow, "passed")

    assert pulls(emulator) == []
    [check] = [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/retrain"]
    assert check["conclusion"] == "failure"
    assert "changes outside retrain.outputs" in check["output"]["title"]
    assert "`train.py`" in check["output"]["summary"]
    assert retrain_lines.line(bot.conn, REPO) is None


def test_a_retrain_pipeline_is_no_deploy_pipeline_of_its_commit(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, repo: str
) -> None:
    sha = push_data(bot, emulator, images_dvc(120))
    workflow = started(semaphore, sha)
    finish(bot, semaphore, workflow, "passed")
    assert deploys.pipeline_for(bot.conn, REPO, sha) is None
    run = semaphore_runs.find_run(bot.conn, workflow.initial_pipeline_id, workflow.id)[0]
    assert run is not None and run.kind == decide.LOOP_RUN


def test_closing_the_retrain_pr_drops_it_from_the_dashboard(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, repo: str
) -> None:
    sha = push_data(bot, emulator, images_dvc(120))
    workflow = started(semaphore, sha)
    head = pipeline_pushes(emulator, workflow, trained(120))
    finish(bot, semaphore, workflow, "passed")
    number = only_pull(emulator)["number"]
    [listed] = retrain_pulls.open_pulls(bot.conn, REPO)
    assert (listed.number, listed.branch, listed.head_sha) == (
        number,
        f"mlgate/retrain-{sha[:7]}",
        head,
    )

    emulator.close_pull_request(REPO, number, merged=True)
    closed = github_event(
        emulator,
        "pull_request",
        "opened.payload",
        REPO,
        "octo",
        action="closed",
        number=number,
        pull_request=emulator.pull_request(REPO, number),
    )
    assert bot.deliver("pull_request", closed) == 202
    assert retrain_pulls.open_pulls(bot.conn, REPO) == []
