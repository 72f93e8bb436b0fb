"""Scheduled retrains: each tick queues the `retrain.schedule` fire times that came due."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis

from bot.core.config import load_config
from bot.core.cron import due
from bot.errors import GitHubError, RepoConfigError
from bot.github.github_client import GitHubApp
from bot.github.repo_files import RepoFiles
from bot.runs.retrain_loop import start_retrain
from bot.state import default_heads, installations, retrain_schedule
from bot.state.default_heads import DefaultHead

log = logging.getLogger(__name__)

FIRE_FORMAT = "%Y-%m-%dT%H:%MZ"


def tick(conn: redis.Redis, app: GitHubApp, now: datetime) -> list[str]:
    """Queue a retrain for every installed repository whose schedule fired since its last
    tick, up to `now` (the caller's clock: tests drive it); returns those repositories.

    A schedule is read from the default branch's configuration at its head as the last push
    showed it, once per head sha. A repository's first tick only starts its clock: fire
    times before mlgate looked are not caught up on. Several fire times due at once (a
    scheduler that was down) make one retrain, of the latest.
    """
    installed = installations.installed_repositories(conn)
    queued = []
    for repo, head in sorted(default_heads.heads(conn).items()):
        if repo not in installed:
            continue
        previous = retrain_schedule.take_tick(conn, repo, now.timestamp())
        schedule = _schedule(conn, app, repo, head, installed[repo])
        if schedule is None or previous is None:
            continue
        fired = due(schedule, datetime.fromtimestamp(previous, UTC), now)
        if not fired:
            continue
        fire = fired[-1].strftime(FIRE_FORMAT)
        if not retrain_schedule.claim_fire(conn, repo, fire):
            continue
        start_retrain(conn, repo, "schedule", sha=head.sha, occasion=fire, schedule=schedule)
        log.info("scheduled retrain queued", extra={"repo": repo, "sha": head.sha, "at": fire})
        queued.append(repo)
    return queued


def _schedule(
    conn: redis.Redis, app: GitHubApp, repo: str, head: DefaultHead, installation_id: int
) -> str | None:
    """`retrain.schedule` of the configuration at the head (None: none, or no valid config)."""
    known, schedule = retrain_schedule.cached_schedule(conn, repo, head.sha)
    if known:
        return schedule
    files = RepoFiles(app.client(installation_id), conn, repo)
    try:
        config = load_config(files.read, head.sha)
    except RepoConfigError:
        schedule = None  # mlgate/config shows the problems on PRs; nothing runs meanwhile
    except GitHubError as exc:
        # Not remembered: the next tick asks again.
        log.warning("could not read the schedule: %s", exc, extra={"repo": repo})
        return None
    else:
        schedule = config.retrain.schedule
    retrain_schedule.remember_schedule(conn, repo, head.sha, schedule)
    return schedule
