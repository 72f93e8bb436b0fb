"""Installation events record which repositories mlgate is installed on."""

from __future__ import annotations

import json
from typing import Any

import redis
from flask.testing import FlaskClient

from bot import create_app
from bot.state.installations import installed_repositories
from tests.support import payload, run_jobs, webhook_headers

INSTALLATION = 957387  # the installation of GitHub's created.payload.json example


def deliver(client: FlaskClient, conn: redis.Redis, event: str, data: dict[str, Any]) -> None:
    body = json.dumps(data).encode()
    response = client.post("/webhooks/github", data=body, headers=webhook_headers(event, body))
    assert response.status_code == 202
    run_jobs(conn)


def test_repositories_are_added_removed_and_forgotten_with_the_installation(
    env: dict[str, str], redis_conn: redis.Redis
) -> None:
    removed = payload("installation_repositories", "removed.payload")
    removed["installation"]["id"] = INSTALLATION
    removed["repositories_removed"] = [{"full_name": "Codertocat/Hello-World"}]
    deleted = payload("installation", "deleted.payload")
    deleted["installation"]["id"] = INSTALLATION
    with create_app(env).test_client() as client:
        deliver(client, redis_conn, "installation", payload("installation", "created.payload"))
        assert installed_repositories(redis_conn) == {"Codertocat/Hello-World": INSTALLATION}
        added = payload("installation_repositories", "added.payload")
        deliver(client, redis_conn, "installation_repositories", added)
        assert set(installed_repositories(redis_conn)) == {
            "Codertocat/Hello-World",
            "Codertocat/Space",
        }
        deliver(client, redis_conn, "installation_repositories", removed)
        assert installed_repositories(redis_conn) == {"Codertocat/Space": INSTALLATION}
        deliver(client, redis_conn, "installation", deleted)
        assert installed_repositories(redis_conn) == {}
