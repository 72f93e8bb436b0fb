"""The dashboard served over HTTP against the emulator's OAuth, with repositories and their
state laid out as a team's would be: shared by the HTTP and the browser tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
import requests

from bot import create_app
from bot.core.metrics import MetricValue
from bot.emulator import GitHubEmulator
from bot.loopback import serve
from bot.state import audit, baselines, production_uploads, recent_evaluations, retrain_pulls

INSTALLATION = 42
# alice writes to the first, reads the second; the third is installed but not hers; she owns
# the fourth, but mlgate is not installed there.
SHARED = "octo/churn-model"
READ_ONLY = "octo/vision"
NOT_HERS = "octo/secret-model"
NOT_INSTALLED = "alice/notebooks"
USER = "alice"
# The default branch's history, oldest first: accuracy climbs, loss falls.
ACCURACY = (0.842, 0.851, 0.848, 0.863, 0.871, 0.869, 0.884, 0.889, 0.895, 0.902)
LOSS = (0.412, 0.398, 0.401, 0.377, 0.362, 0.365, 0.341, 0.333, 0.322, 0.311)
NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC: fixed, so that the page reads the same every run


@dataclass(frozen=True)
class Site:
    """The web app (with the dashboard configured) and the emulator it signs people in with."""

    url: str
    emulator: GitHubEmulator
    conn: redis.Redis


def dashboard_env(env: dict[str, str], emulator: GitHubEmulator) -> dict[str, str]:
    """`env` plus the emulated App's OAuth client."""
    return env | {
        "GITHUB_CLIENT_ID": emulator.github_app.client_id,
        "GITHUB_CLIENT_SECRET": emulator.github_app.client_secret,
    }


def lay_out_repositories(emulator: GitHubEmulator) -> None:
    emulator.add_installation(INSTALLATION, "octo")
    for name in (SHARED, READ_ONLY, NOT_HERS):
        emulator.create_repo(name, installation_id=INSTALLATION)
    emulator.create_repo(NOT_INSTALLED)
    emulator.set_permission(SHARED, USER, "write")
    emulator.set_permission(READ_ONLY, USER, "read")
    emulator.add_user(USER, name="Alice")


@contextmanager
def serve_dashboard(
    env: dict[str, str], emulator: GitHubEmulator, conn: redis.Redis
) -> Iterator[Site]:
    """The app over HTTP, its callback URL registered with the emulated App."""
    with serve(create_app(dashboard_env(env, emulator))) as url:
        emulator.github_app.callback_urls.append(f"{url}/auth/callback")
        try:
            yield Site(url, emulator, conn)
        finally:
            emulator.github_app.callback_urls.remove(f"{url}/auth/callback")


def sign_in(site: Site, login: str = USER) -> requests.Session:
    """A browser-like session signed in as `login` (requests follows every redirect)."""
    site.emulator.sign_in(login)
    browser = requests.Session()
    landed = browser.get(f"{site.url}/login", timeout=10)
    assert landed.status_code == 200, landed.text
    assert landed.url == f"{site.url}/", landed.url
    return browser


def sha(n: int) -> str:
    """A commit sha that looks like one, the same for the same `n`."""
    return hashlib.sha1(f"commit {n}".encode()).hexdigest()


def seed_history(conn: redis.Redis, repo: str = SHARED) -> None:
    """What mlgate would have recorded over a few weeks on `repo`."""
    start = NOW - 20 * 86400
    for i, (accuracy, loss) in enumerate(zip(ACCURACY, LOSS, strict=True)):
        metrics: dict[str, dict[str, MetricValue]] = {
            "metrics.json": {"accuracy": accuracy, "loss": loss, "model": "xgb"}
        }
        baselines.record_baseline(conn, repo, sha(i + 1), metrics, start + i * 86400)
    verdicts = [
        (31, sha(40), "passed", 3, 0),
        (32, sha(41), "failed", 3, 1),
        (32, sha(42), "overridden", 3, 1),
        (33, sha(43), "neutral", 0, 0),
        (34, sha(44), "passed", 3, 0),
    ]
    for k, (pr, head, verdict, gates, failed) in enumerate(verdicts):
        recent_evaluations.record(
            conn,
            repo,
            recent_evaluations.PublishedEvaluation(
                pr, head, verdict, start + 12 * 86400 + k * 7200, failed, gates
            ),
        )
    retrain_pulls.record_open(
        conn,
        repo,
        retrain_pulls.RetrainPull(
            35,
            f"Retrain on new data ({sha(10)[:7]})",
            f"mlgate/retrain-{sha(10)[:7]}",
            sha(50),
            NOW - 5400,
        ),
    )
    live = (0.889, 0.884, 0.871, 0.855, 0.839, 0.828)
    for k, accuracy in enumerate(live):
        production_uploads.record(
            conn,
            repo,
            "production",
            sha(9),
            "metrics.json",
            {"accuracy": accuracy},
            NOW - (len(live) - k) * 3600,
        )
    production_uploads.set_open_issue(conn, repo, "production", 36)
    for k, (kind, user, pr, detail) in enumerate(
        (
            ("approve-evaluate", "bob", 33, "first-time contributor's change"),
            ("override", "alice", 32, "accuracy drop within noise; retrain scheduled"),
            ("retrain", "alice", 34, "lr=0.1,0.01"),
        )
    ):
        entry = audit.Entry(kind, user, pr, sha(40 + pr - 31), detail, NOW - (3 - k) * 5000)
        audit.record(conn, repo, entry)
