"""The retrain loop on the emulator, real Redis and real git: new data or a schedule retrains
the default branch and mlgate opens (or moves) exactly one retrain PR."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from bot.core.retrain_outputs import (
    EXECUTABLE,
    REGULAR,
    BlobFile,
    OutputChange,
    blob_sha,
    merges_own_retrain,
    output_changes,
)
from bot.emulator import GitHubEmulator
from bot.errors import MlgateError
from bot.http_transport import MAX_TRIES
from bot.runs import retrain_decisions as decide
from bot.runs.retrain_loop import job_kind, start_retrain
from bot.state import audit, baselines, retrain_lines, retrain_pulls
from bot.state.queues import RUNS, run_job_id
from tests.support import Bot, github_event, payload, run_jobs
from workers import jobs

REPO = "octo/model"
INSTALLATION = 42
ENGINEER = "dana"
CONFIG = """\
version: 1
retrain:
  run: python3 train.py
  on_data: {on_data}
  outputs: [metrics.json, "models/*.dvc"]
{schedule}"""
# Writes two outputs that follow the data, one that never changes, and a file that is not an
# output; fails on data marked FAIL, as a training run that diverges.
TRAIN_PY = """\
import json, os, re, sys
text = open("data/images.dvc").read()
if "FAIL" in text:
    print("loaded", text.count("\\n"), "lines")
    print("training diverged: loss is nan", file=sys.stderr)
    sys.exit(3)
n = int(re.search(r"nfiles: (\\d+)", text).group(1))
os.makedirs("models", exist_ok=True)
with open("metrics.json", "w") as f:
    json.dump({"accuracy": round(1 - 1 / n, 4), "images": n}, f)
with open("models/model.dvc", "w") as f:
    f.write(f"outs:\\n- md5: {n * 7919:032x}\\n  path: model.pkl\\n")
with open("models/encoder.dvc", "w") as f:
    f.write("outs:\\n- md5: 0123456789abcdef0123456789abcdef\\n  path: encoder.pkl\\n")
with open("notes.txt", "w") as f:
    f.write(f"trained on {n} images\\n")
print("trained on", n, "images")
"""


def images_dvc(nfiles: int, *, salt: str = "", fail: bool = False) -> str:
    mark = "# FAIL: the vendor's broken export\n" if fail else ""
    return f"{mark}outs:\n- md5: {salt or 'a' * 32}.dir\n  nfiles: {nfiles}\n  path: images\n"


def trained(nfiles: int) -> dict[str, str]:
    """The outputs train.py writes for `nfiles` images, as committed."""
    import json

    metrics = json.dumps({"accuracy": round(1 - 1 / nfiles, 4), "images": nfiles})
    return {
        "metrics.json": metrics,
        "models/model.dvc": f"outs:\n- md5: {nfiles * 7919:032x}\n  path: model.pkl\n",
        "models/encoder.dvc": (
            "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: encoder.pkl\n"
        ),
    }


def create(emulator: GitHubEmulator, *, on_data: bool = True, schedule: str = "") -> str:
    emulator.add_installation(
        INSTALLATION,
        "octo",
        # The Git Data API writes contents: the retrain loop needs Contents: read & write.
        permissions={**emulator.installation_permissions, "contents": "write"},
    )
    line = f'  schedule: "{schedule}"\n' if schedule else ""
    files = {
        ".github/mlgate.yml": CONFIG.format(on_data=str(on_data).lower(), schedule=line),
        "train.py": TRAIN_PY,
        "data/images.dvc": images_dvc(100),
        "notes.txt": "trained on 100 images\n",
        **trained(100),
    }
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
    return REPO


@pytest.fixture
def repo(emulator: GitHubEmulator) -> str:
    return create(emulator)


def push_event(
    emulator: GitHubEmulator, before: str, after: str, modified: list[str]
) -> dict[str, Any]:
    commit = {"id": after, "added": [], "removed": [], "modified": modified}
    return github_event(
        emulator,
        "push",
        "payload",
        REPO,
        ENGINEER,
        ref="refs/heads/main",
        before=before,
        after=after,
        deleted=False,
        commits=[commit],
    )


def commit_data(emulator: GitHubEmulator, content: str) -> tuple[str, dict[str, Any]]:
    """Commit new data on main; returns its sha and the push webhook GitHub would send."""
    main = emulator.repo(REPO)
    before = main.head("main")
    after = main.commit("main", {"data/images.dvc": content}, "New images", author=ENGINEER)
    return after, push_event(emulator, before, after, ["data/images.dvc"])


def push_data(bot: Bot, emulator: GitHubEmulator, content: str) -> str:
    sha, event = commit_data(emulator, content)
    assert bot.deliver("push", event) == 202
    return sha


def pulls(emulator: GitHubEmulator) -> list[dict[str, Any]]:
    return [
        emulator.pull_request(REPO, i["number"])
        for i in emulator.issues(REPO)
        if "pull_request" in i
    ]


def only_pull(emulator: GitHubEmulator) -> dict[str, Any]:
    found = pulls(emulator)
    assert len(found) == 1, [p["title"] for p in found]
    return found[0]


def changed_files(emulator: GitHubEmulator, base: str, head: str) -> dict[str, str]:
    git = emulator.repo(REPO).git
    return {c.filename: c.status for c in git.diff(base, head)}


def retrains(conn: redis.Redis) -> list[audit.Entry]:
    return [e for e in audit.entries(conn, REPO) if e.kind == "retrain"]


def test_a_data_push_opens_one_retrain_pr_with_exactly_the_changed_outputs(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    sha = push_data(bot, emulator, images_dvc(120))

    pull = only_pull(emulator)
    assert pull["title"] == f"Retrain on new data ({sha[:7]})"
    assert pull["head"]["ref"] == f"mlgate/retrain-{sha[:7]}"
    assert pull["base"]["ref"] == "main"
    assert pull["user"]["login"] == emulator.bot_login
    assert [label["name"] for label in pull["labels"]] == ["mlgate:retrain"]
    head = pull["head"]["sha"]
    git = emulator.repo(REPO).git
    info = git.commit_info(head)
    assert info is not None and info.parents == (sha,)
    # Exactly the outputs that changed: not the unchanged output, not a file outside outputs.
    assert changed_files(emulator, sha, head) == {
        "metrics.json": "modified",
        "models/model.dvc": "modified",
    }
    entry = git.entry(head, "metrics.json")
    assert entry is not None and git.blob(entry.sha) == trained(120)["metrics.json"].encode()
    body = pull["body"]
    assert f"/{REPO}/commit/{sha}" in body
    assert f"@{ENGINEER} pushed new data (`data/images.dvc`)" in body
    assert "- `metrics.json`\n- `models/model.dvc`\n" in body
    entries = retrains(bot.conn)
    assert [(e.pr, e.sha, e.user) for e in entries] == [(pull["number"], sha, ENGINEER)]
    assert entries[0].detail == (
        f"data push: opened #{pull['number']} with metrics.json, models/model.dvc"
    )
    assert not emulator.check_runs(REPO, sha)  # only a failure shows mlgate/retrain


def test_a_second_data_push_moves_the_same_pr_and_says_so(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    first = push_data(bot, emulator, images_dvc(120))
    number = only_pull(emulator)["number"]
    second = push_data(bot, emulator, images_dvc(150))

    pull = only_pull(emulator)
    assert pull["number"] == number
    assert pull["head"]["ref"] == f"mlgate/retrain-{first[:7]}"  # the line's branch, moved
    head = pull["head"]["sha"]
    info = emulator.repo(REPO).git.commit_info(head)
    assert info is not None and info.parents == (second,)
    assert changed_files(emulator, second, head) == {
        "metrics.json": "modified",
        "models/model.dvc": "modified",
    }
    comments = emulator.comments(REPO, number)
    assert len(comments) == 1
    assert f"at [`{second[:7]}`]" in comments[0]["body"]
    assert "moved this PR's branch to the new outputs" in comments[0]["body"]
    assert [e.detail.split(" with ")[0] for e in retrains(bot.conn)] == [
        f"data push: opened #{number}",
        f"data push: moved #{number} to {second[:7]}",
    ]


def test_the_dashboard_lists_the_open_retrain_pr_until_it_is_closed(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    first = push_data(bot, emulator, images_dvc(120))
    push_data(bot, emulator, images_dvc(150))
    pull = only_pull(emulator)
    [listed] = retrain_pulls.open_pulls(bot.conn, REPO)
    assert (listed.number, listed.title, listed.branch, listed.head_sha) == (
        pull["number"],
        f"Retrain on new data ({first[:7]})",
        f"mlgate/retrain-{first[:7]}",
        pull["head"]["sha"],
    )

    # Another PR closing leaves it listed; the retrain PR closing (unmerged) drops it.
    main = emulator.repo(REPO)
    main.commit("feature", {"notes.txt": "more\n"}, "Notes")
    other = emulator.open_pull_request(REPO, head="feature", base="main", user=ENGINEER)
    for number in (other["number"], pull["number"]):
        emulator.close_pull_request(REPO, number)
        closed = github_event(
            emulator,
            "pull_request",
            "opened.payload",
            REPO,
            ENGINEER,
            action="closed",
            number=number,
            pull_request=emulator.pull_request(REPO, number),
        )
        assert bot.deliver("pull_request", closed) == 202
        listed_now = [p.number for p in retrain_pulls.open_pulls(bot.conn, REPO)]
        assert listed_now == ([] if number == pull["number"] else [pull["number"]])


def test_a_retrain_of_an_older_commit_never_moves_the_pr_back(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    older = push_data(bot, emulator, images_dvc(120))
    newer = push_data(bot, emulator, images_dvc(150))
    pull = only_pull(emulator)

    assert start_retrain(bot.conn, REPO, "command", sha=older, user="alice")
    run_jobs(bot.conn)

    assert only_pull(emulator)["head"]["sha"] == pull["head"]["sha"]
    assert retrains(bot.conn)[-1].detail == (
        f"command: not run: the retrain PR already holds the newer {newer[:7]}"
    )


def test_a_duplicate_push_webhook_and_a_rerun_job_change_nothing(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    sha, event = commit_data(emulator, images_dvc(120))
    assert bot.deliver("push", event) == 202
    pull = only_pull(emulator)
    # GitHub may deliver one push twice under two delivery ids.
    assert bot.deliver("push", event) == 202
    job = Job.fetch(run_job_id(job_kind("data"), REPO, None, sha), connection=bot.conn)
    assert job.return_value() == decide.ALREADY_DONE
    # The same job run again by hand (rq requeue, an operator) ends at once as well.
    request = job.kwargs["request"]
    assert jobs.retrain_default_branch(request) == decide.ALREADY_DONE

    assert only_pull(emulator) == pull
    assert len(retrains(bot.conn)) == 1
    assert emulator.comments(REPO, pull["number"]) == []


def test_a_job_that_failed_after_opening_the_pr_is_retried_into_the_same_pr(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    # GitHub down for every try of the label request: the job fails after opening the PR.
    emulator.inject_fault("POST", r"/issues/\d+/labels$", 502, times=MAX_TRIES)
    sha = push_data(bot, emulator, images_dvc(120))
    job_id = run_job_id(job_kind("data"), REPO, None, sha)
    failed = FailedJobRegistry(RUNS, connection=bot.conn)
    assert job_id in failed.get_job_ids()
    opened = only_pull(emulator)
    assert opened["labels"] == []
    assert retrains(bot.conn) == []  # nothing is audited before it is done

    failed.requeue(job_id)
    run_jobs(bot.conn)

    pull = only_pull(emulator)
    assert pull["number"] == opened["number"]
    assert pull["head"]["sha"] == opened["head"]["sha"]  # nothing committed again
    assert [label["name"] for label in pull["labels"]] == ["mlgate:retrain"]
    assert [e.detail.split(" with ")[0] for e in retrains(bot.conn)] == [
        f"data push: opened #{pull['number']}"
    ]
    assert emulator.comments(REPO, pull["number"]) == []


def test_a_retrain_after_redis_lost_its_state_finds_the_open_pr_on_github(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    push_data(bot, emulator, images_dvc(120))
    number = only_pull(emulator)["number"]
    bot.conn.flushdb()

    second = push_data(bot, emulator, images_dvc(150))

    pull = only_pull(emulator)
    assert pull["number"] == number
    info = emulator.repo(REPO).git.commit_info(pull["head"]["sha"])
    assert info is not None and info.parents == (second,)
    saved = retrain_lines.line(bot.conn, REPO)
    assert saved is not None and saved.number == number


def test_two_pushes_queued_together_retrain_only_the_newer_one(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    first, first_event = commit_data(emulator, images_dvc(120))
    second, second_event = commit_data(emulator, images_dvc(150))
    assert emulator.send_webhook("push", first_event) == 202
    assert emulator.send_webhook("push", second_event) == 202
    run_jobs(bot.conn)

    pull = only_pull(emulator)
    assert pull["title"] == f"Retrain on new data ({second[:7]})"
    assert [e.sha for e in retrains(bot.conn)] == [second]
    queued_first = Job.fetch(run_job_id(job_kind("data"), REPO, None, first), bot.conn)
    assert queued_first.get_status() == "canceled"


def test_no_change_in_the_outputs_opens_no_pr_and_leaves_one_audit_entry(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    # New data files, the same number of images: train.py writes what is committed.
    sha = push_data(bot, emulator, images_dvc(100, salt="b" * 32))

    assert pulls(emulator) == []
    assert [(e.sha, e.detail) for e in retrains(bot.conn)] == [
        (sha, "data push: no change under retrain.outputs; no PR")
    ]
    assert not [b for b in emulator.repo(REPO).git.branches() if b.startswith("mlgate/")]


def test_a_failed_retrain_fails_mlgate_retrain_with_the_log_and_opens_nothing(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    sha = push_data(bot, emulator, images_dvc(120, fail=True))

    assert pulls(emulator) == []
    runs = [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/retrain"]
    assert len(runs) == 1
    check = runs[0]
    assert (check["status"], check["conclusion"]) == ("completed", "failure")
    assert check["output"]["title"] == "Retrain failed: `python3 train.py` exited with 3"
    assert "training diverged: loss is nan" in check["output"]["summary"]
    assert "No PR was opened" in check["output"]["summary"]
    assert [e.detail for e in retrains(bot.conn)] == [
        "data push: failed: `python3 train.py` exited with 3"
    ]


def test_an_installation_without_contents_write_gets_a_failing_check_that_says_so(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    create(emulator)
    emulator.add_installation(INSTALLATION, "octo")  # reinstalled with Contents read-only
    sha = push_data(bot, emulator, images_dvc(120))

    assert pulls(emulator) == []
    [check] = [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/retrain"]
    assert check["conclusion"] == "failure"
    assert (
        "the App needs the repository permission Contents: read & write"
        in (check["output"]["summary"])
    )
    assert "trained on 120 images" in check["output"]["summary"]  # the retrain's log
    assert len(retrains(bot.conn)) == 1


def test_merging_the_retrain_pr_into_main_does_not_retrain_again(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    push_data(bot, emulator, images_dvc(120))
    pull = only_pull(emulator)
    main = emulator.repo(REPO)
    before, merged = main.head("main"), pull["head"]["sha"]
    main.set_ref("refs/heads/main", merged, expect=before)  # a fast-forward merge

    # models/model.dvc is data under the default triggers: only its content says it is ours.
    event = push_event(emulator, before, merged, ["metrics.json", "models/model.dvc"])
    assert bot.deliver("push", event) == 202

    job = Job.fetch(run_job_id(job_kind("data"), REPO, None, merged), connection=bot.conn)
    assert job.return_value() == decide.OWN_MERGE
    assert only_pull(emulator)["number"] == pull["number"]
    assert len(retrains(bot.conn)) == 1


def test_a_push_whose_config_could_not_be_read_queues_the_baseline_and_retries(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    emulator.inject_fault("GET", r"/contents/\.github/mlgate\.yml$", 502, times=MAX_TRIES)
    sha = push_data(bot, emulator, images_dvc(120))

    assert baselines.baseline(bot.conn, REPO, sha) is not None
    # The event's job failed once and was retried: the retrain PR is there, once.
    assert only_pull(emulator)["title"] == f"Retrain on new data ({sha[:7]})"


def test_pushes_elsewhere_or_without_on_data_retrain_nothing(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    create(emulator, on_data=False)
    push_data(bot, emulator, images_dvc(120))
    sha, event = commit_data(emulator, images_dvc(130))
    bot.deliver("push", event | {"ref": "refs/heads/feature"})
    assert pulls(emulator) == []
    assert retrains(bot.conn) == []
    assert sha not in [e.sha for e in audit.entries(bot.conn, REPO)]


def install(bot: Bot, emulator: GitHubEmulator) -> None:
    """The installation event that tells mlgate which repositories it serves."""
    event = payload("installation", "created.payload")
    event["installation"]["id"] = INSTALLATION
    event["repositories"] = [{"id": 1, "name": "model", "full_name": REPO, "private": False}]
    assert bot.deliver("installation", event) == 202


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_a_schedule_tick_opens_a_scheduled_retrain_pr_once(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    create(emulator, on_data=False, schedule="0 3 * * 1")
    install(bot, emulator)
    sha = push_data(bot, emulator, images_dvc(120))  # new data, left for the schedule
    assert pulls(emulator) == []

    # 2024-06-03 is a Monday: the first tick starts the clock, the next one finds 03:00 due.
    assert jobs.tick_retrain_schedules(at("2024-06-03T02:59:30")) == []
    assert jobs.tick_retrain_schedules(at("2024-06-03T02:59:59")) == []
    assert jobs.tick_retrain_schedules(at("2024-06-03T03:00:05")) == [REPO]
    assert jobs.tick_retrain_schedules(at("2024-06-03T03:00:05")) == []
    assert jobs.tick_retrain_schedules(at("2024-06-03T03:01:05")) == []
    run_jobs(bot.conn)

    pull = only_pull(emulator)
    assert pull["title"] == "Scheduled retrain (2024-06-03)"
    assert "its schedule `0 3 * * 1` came due (`2024-06-03T03:00Z`)" in pull["body"]
    info = emulator.repo(REPO).git.commit_info(pull["head"]["sha"])
    assert info is not None and info.parents == (sha,)
    assert [e.detail.split(" with ")[0] for e in retrains(bot.conn)] == [
        f"schedule 2024-06-03T03:00Z: opened #{pull['number']}"
    ]
    # A week later on the same commit: retrained again, the same outputs as the open PR's.
    assert jobs.tick_retrain_schedules(at("2024-06-10T03:00:00")) == [REPO]
    run_jobs(bot.conn)
    assert only_pull(emulator)["head"]["sha"] == pull["head"]["sha"]
    assert emulator.comments(REPO, pull["number"]) == []
    assert [e.detail for e in retrains(bot.conn)][-1] == (
        f"schedule 2024-06-10T03:00Z: #{pull['number']} already holds these outputs; "
        "nothing to commit"
    )


def test_a_schedule_of_an_uninstalled_or_unscheduled_repository_never_fires(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    create(emulator, on_data=False)  # no schedule
    install(bot, emulator)
    push_data(bot, emulator, images_dvc(120))
    for moment in ("2024-06-03T02:59:00", "2024-06-03T03:00:00", "2024-06-10T03:00:00"):
        assert jobs.tick_retrain_schedules(at(moment)) == []
    run_jobs(bot.conn)
    assert pulls(emulator) == []


def test_start_retrain_needs_a_push_to_the_default_branch_first(redis_conn: redis.Redis) -> None:
    with pytest.raises(MlgateError, match="no push to the default branch of octo/model"):
        start_retrain(redis_conn, REPO, "monitoring")


# -- the pure parts -----------------------------------------------------------------------------


def test_output_changes_are_the_changed_new_and_vanished_outputs_only() -> None:
    same, old, gone = b"same\n", b"old\n", b"gone\n"
    before = {
        "metrics.json": BlobFile(REGULAR, blob_sha(old)),
        "models/a.dvc": BlobFile(REGULAR, blob_sha(same)),
        "models/b.dvc": BlobFile(REGULAR, blob_sha(gone)),
        "models/run.sh": BlobFile(REGULAR, blob_sha(same)),
        "notes.txt": BlobFile(REGULAR, blob_sha(old)),
    }
    after = {
        "metrics.json": (REGULAR, b"new\n"),
        "models/a.dvc": (REGULAR, same),
        "models/c.dvc": (REGULAR, b"c\n"),
        "models/run.sh": (EXECUTABLE, same),
        "notes.txt": (REGULAR, b"not an output\n"),
    }
    patterns = ["metrics.json", "models/*"]
    assert output_changes(before, after, patterns) == (
        OutputChange("metrics.json", REGULAR, b"new\n"),
        OutputChange("models/b.dvc", REGULAR, None),
        OutputChange("models/c.dvc", REGULAR, b"c\n"),
        OutputChange("models/run.sh", EXECUTABLE, same),
    )
    assert output_changes(before, {p: (f.mode, b"") for p, f in before.items()}, []) == ()


def test_blob_sha_is_gits() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert blob_sha(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert blob_sha(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_a_push_is_a_merge_of_the_retrain_only_when_every_data_path_holds_its_blob() -> None:
    committed = {"models/m.dvc": "1" * 40, "old.dvc": None}
    at_commit = {"models/m.dvc": BlobFile(REGULAR, "1" * 40), "data/x.dvc": BlobFile(REGULAR, "2")}
    assert merges_own_retrain(["models/m.dvc"], committed, at_commit)
    assert merges_own_retrain(["models/m.dvc", "old.dvc"], committed, at_commit)
    assert not merges_own_retrain([], committed, at_commit)
    assert not merges_own_retrain(["models/m.dvc", "data/x.dvc"], committed, at_commit)
    changed = {"models/m.dvc": BlobFile(REGULAR, "3" * 40)}
    assert not merges_own_retrain(["models/m.dvc"], committed, changed)


def request(trigger: str, **fields: Any) -> decide.RetrainRequest:
    return decide.RetrainRequest(
        repo=REPO,
        sha="abcdef1234567890abcdef1234567890abcdef12",
        trigger=trigger,
        installation_id=INSTALLATION,
        default_branch="main",
        **fields,
    )


def test_titles_and_branches_name_the_commit_or_the_day() -> None:
    assert decide.title(request("data")) == "Retrain on new data (abcdef1)"
    scheduled = request("schedule", occasion="2024-06-03T03:00Z")
    assert decide.title(scheduled) == "Scheduled retrain (2024-06-03)"
    assert scheduled.label == "schedule 2024-06-03T03:00Z"
    assert decide.title(request("monitoring")) == "Retrain after a monitoring breach (abcdef1)"
    assert decide.branch_name("abcdef1234") == "mlgate/retrain-abcdef1"
    with pytest.raises(ValueError, match="retrain trigger 'nightly'"):
        request("nightly")


def test_only_a_data_push_that_fails_gets_a_failing_check() -> None:
    data = decide.failed(request("data"), "`x` exited with 1", "boom\n")
    assert [(c.name, c.conclusion) for c in data.checks] == [("mlgate/retrain", "failure")]
    assert "boom" in data.checks[0].summary
    scheduled = decide.failed(request("schedule", occasion="2024-06-03T03:00Z"), "x", "")
    assert scheduled.checks == ()
    assert [r.entry.detail for r in scheduled.audit] == ["schedule 2024-06-03T03:00Z: failed: x"]
