"""GET /metrics: the names operators rely on, right under several gunicorn processes."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue

from bot import create_app
from bot import sample as sample_repo
from bot.emulator import GitHubEmulator
from bot.state import deliveries
from bot.state.deliveries import DeliveryState
from bot.state.queues import EVENTS
from tests.support import Bot, payload, pull_request_event, webhook_headers

NAMES = (
    "mlgate_webhooks_total",
    "mlgate_webhook_seconds",
    "mlgate_jobs_total",
    "mlgate_job_seconds",
    "mlgate_queue_depth",
    "mlgate_github_requests_total",
    "mlgate_github_rate_limit_remaining",
    "mlgate_evaluations_total",
)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', metric))
        if metric.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


@pytest.fixture
def app(env: dict[str, str], redis_conn: redis.Redis) -> Flask:
    return create_app(env)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def scrape(client: FlaskClient, **headers: str) -> tuple[int, str]:
    response = client.get("/metrics", headers=headers)
    return response.status_code, response.get_data(as_text=True)


def test_every_documented_name_is_exposed(client: FlaskClient) -> None:
    status, text = scrape(client)
    assert status == 200
    for name in NAMES:
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


def test_a_webhook_counts_by_outcome_and_the_queue_depth_follows_redis(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    before = scrape(client)[1]
    body = json.dumps(payload("push")).encode()
    for delivery in ("m-1", "m-1", "m-2"):
        client.post(
            "/webhooks/github", data=body, headers=webhook_headers("push", body, delivery=delivery)
        )
    client.post(
        "/webhooks/github", data=body, headers=webhook_headers("push", body, secret="wrong")
    )
    after = scrape(client)[1]

    def delta(**labels: str) -> float:
        name = "mlgate_webhooks_total"
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta(source="github", outcome="accepted") == 2
    assert delta(source="github", outcome="duplicate") == 1
    assert delta(source="github", outcome="bad_signature") == 1
    count = "mlgate_webhook_seconds_count"
    assert sample(after, count) - sample(before, count) == 4
    assert Queue(EVENTS, connection=redis_conn).count == 2
    assert sample(after, "mlgate_queue_depth", queue="events") == 2
    assert sample(after, "mlgate_queue_depth", queue="runs") == 0


def test_the_metrics_token_is_asked_for_when_set(
    env: dict[str, str], redis_conn: redis.Redis
) -> None:
    app = create_app(env | {"MLGATE_METRICS_TOKEN": "scrape-me"})
    with app.test_client() as client:
        assert scrape(client)[0] == 401
        assert scrape(client, Authorization="Bearer nope")[0] == 401
        assert scrape(client, Authorization="scrape-me")[0] == 401
        status, text = scrape(client, Authorization="Bearer scrape-me")
    assert status == 200
    assert "mlgate_webhooks_total" in text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def web_processes(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def replaced_by_two(master: int, gone: set[int]) -> bool:
    return len(set(web_processes(master)) - gone) == 2


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except OSError:
        return False
    return True


def wait_for(condition: Callable[[], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_figures_are_summed_over_several_gunicorn_processes(
    env: dict[str, str], redis_conn: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    multiproc = tmp_path / "prometheus"
    server_env = os.environ | env | {"WEB_CONCURRENCY": "2", "WEB_THREADS": "1"}
    server_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server_env["MLGATE_DATA_DIR"] = str(tmp_path)
    server = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--bind", f"127.0.0.1:{port}"],
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{base}/healthz"))
        body = json.dumps(payload("push")).encode()
        sent = 24
        for index in range(sent):
            if index == sent // 2:
                # Half way, the web processes are killed and gunicorn starts new ones: the
                # figures of processes that are gone must still count.
                replaced = set(web_processes(server.pid))
                for pid in replaced:
                    os.kill(pid, signal.SIGKILL)
                wait_for(functools.partial(replaced_by_two, server.pid, replaced))
            request = urllib.request.Request(
                f"{base}/webhooks/github", data=body, headers=webhook_headers("push", body)
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 202
        scraped = []
        for _ in range(6):
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
                scraped.append(response.read().decode())
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Every scrape, whichever process answers it, shows all of them.
    accepted = [sample(t, "mlgate_webhooks_total", outcome="accepted") for t in scraped]
    assert accepted == [sent] * len(scraped)
    assert [sample(t, "mlgate_webhook_seconds_count") for t in scraped] == [sent] * len(scraped)
    # ...and more than one process wrote them.
    assert len(list(multiproc.glob("counter_*.db"))) >= 2
    assert len(list(multiproc.glob("histogram_*.db"))) >= 2


def test_a_worker_serves_its_machines_figures_on_its_own_port(
    env: dict[str, str], redis_conn: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    worker_env = os.environ | env | {"MLGATE_DATA_DIR": str(tmp_path)}
    worker_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "worker", "--metrics-port", str(port)],
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/metrics"))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    # The figures of this machine's directory (labelled series appear once they have a value).
    assert "# TYPE mlgate_webhook_seconds histogram" in text
    assert (tmp_path / "prometheus").is_dir()


def test_the_grafana_dashboard_charts_every_name_and_no_other() -> None:
    dashboard = json.loads(
        (Path(__file__).parent.parent / "deploy" / "grafana" / "mlgate-dashboard.json").read_text()
    )
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = set(re.findall(r"mlgate_[a-z_]+", exprs))
    bases = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    assert bases == set(NAMES)


def test_metric_objects_are_made_once_when_threads_race_for_them() -> None:
    import threading

    from bot import telemetry

    telemetry._made = None  # a fresh web process
    from prometheus_client import REGISTRY

    for collector in list(REGISTRY._collector_to_names):  # what an earlier test registered
        if any(n.startswith("mlgate_") for n in REGISTRY._collector_to_names[collector]):
            REGISTRY.unregister(collector)
    barrier = threading.Barrier(8)
    made: list[object] = []
    errors: list[BaseException] = []

    def first_request() -> None:
        barrier.wait()
        try:
            made.append(telemetry.metrics())
        except BaseException as exc:  # what a request thread would turn into a 500
            errors.append(exc)

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({id(m) for m in made}) == 1


# --- jobs, GitHub requests and evaluations -----------------------------------------------------


def test_a_worker_counts_its_jobs_by_queue_kind_and_status(
    client: FlaskClient, env: dict[str, str], redis_conn: redis.Redis, tmp_path: Path
) -> None:
    body = json.dumps(payload("push")).encode()
    for delivery in ("j-1", "j-2", "j-3", "j-lost"):
        response = client.post(
            "/webhooks/github", data=body, headers=webhook_headers("push", body, delivery=delivery)
        )
        assert response.status_code == 202
    # Its stored body gone, the job fails: once, again twice (MLGATE_RETRY_DELAYS=0,0), for good.
    deliveries.drop_payload(redis_conn, "github", "j-lost")
    port = free_port()
    worker_env = os.environ | env | {"MLGATE_DATA_DIR": str(tmp_path)}
    # The others finish without GitHub: their repository is not allowed here.
    worker_env["MLGATE_REPO_ALLOWLIST"] = "someone/else"
    worker_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "worker", "--metrics-port", str(port)],
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"

    def jobs_seen() -> float:
        if not answers(url):
            return 0.0
        with urllib.request.urlopen(url, timeout=5) as response:
            return sample(response.read().decode(), "mlgate_job_seconds_count")

    try:
        wait_for(lambda: jobs_seen() >= 6, seconds=120)
        time.sleep(0.5)  # nothing more comes
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    def jobs(status: str) -> float:
        labels = {"queue": "events", "kind": "handle_github_event", "status": status}
        return sample(text, "mlgate_jobs_total", **labels)

    assert (jobs("finished"), jobs("retried"), jobs("failed")) == (3, 2, 1)
    assert sample(text, "mlgate_job_seconds_count", kind="handle_github_event") == 6
    assert deliveries.state(redis_conn, "github", "j-lost") == DeliveryState.FAILED


def test_github_answers_and_evaluations_are_counted(
    bot: Bot, emulator: GitHubEmulator, client: FlaskClient
) -> None:
    emulator.rate_limit = 1000
    emulator.add_installation(42, "octo")
    emulator.create_repo(
        "octo/model",
        installation_id=42,
        files=sample_repo.files(sample_repo.BASE_DATA, sample_repo.BASE_PARAMS),
    )
    better = sample_repo.files(sample_repo.BETTER_DATA, sample_repo.BASE_PARAMS)
    names = ("data/images.dvc", "dvc.lock", "data/features.csv", "metrics.json")
    emulator.repo("octo/model").commit("feature", {n: better[n] for n in names}, "data")
    pull = emulator.open_pull_request("octo/model", head="feature", base="main", user="octo")
    # The first check run is refused twice before it is written.
    emulator.inject_fault("POST", r"/check-runs$", 502, times=2)
    before = scrape(client)[1]
    bot.deliver(
        "pull_request", pull_request_event(emulator, "octo/model", pull["number"], "opened")
    )
    after = scrape(client)[1]

    api = [r for r in emulator.requests if r.auth in ("installation", "jwt")]
    expected = Counter((r.method, str(r.status)) for r in api)
    assert expected[("POST", "502")] == 2
    counted = {
        pair: sample(after, "mlgate_github_requests_total", method=pair[0], status=pair[1])
        - sample(before, "mlgate_github_requests_total", method=pair[0], status=pair[1])
        for pair in expected
    }
    assert counted == dict(expected)
    # The last answer to the installation says how much of its limit is left.
    used = sum(1 for r in api if r.auth == "installation")
    remaining = sample(after, "mlgate_github_rate_limit_remaining", installation="42")
    assert remaining == 1000 - used
    verdicts = {
        v: sample(after, "mlgate_evaluations_total", verdict=v)
        - sample(before, "mlgate_evaluations_total", verdict=v)
        for v in ("success", "failure", "neutral")
    }
    assert verdicts == {"success": 1, "failure": 0, "neutral": 0}
