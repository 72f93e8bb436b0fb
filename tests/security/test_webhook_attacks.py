"""Attacks on the webhook endpoint: malformed signatures, and Redis dropping the connection
in the middle of the accept transaction (an event must never be answered 200 and lost)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from flask import Flask
from rq import Queue

from bot import create_app
from bot.core import signatures
from bot.state import deliveries
from bot.state.deliveries import DeliveryState
from bot.state.queues import EVENTS
from tests.support import SECRET, payload, webhook_headers

BODY = json.dumps({"zen": "x", "hook_id": 1}).encode()


@pytest.fixture
def app(env: dict[str, str], redis_conn: redis.Redis) -> Flask:
    return create_app(env)


def post_signature(app: Flask, signature: str, delivery: str = "d-sig") -> tuple[int, str]:
    headers = webhook_headers("push", BODY, delivery=delivery) | {"X-Hub-Signature-256": signature}
    with app.test_client() as client:
        # Werkzeug's test client sends str headers as latin-1, as a raw HTTP request would.
        response = client.post("/webhooks/github", data=BODY, headers=headers)
    return response.status_code, response.get_data(as_text=True)


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=é",
        "sha256=" + "é" * 64,
        "sha256=" + "0" * 63,
        "sha256=" + "0" * 65,
        "sha1=" + "0" * 40,
        signatures.sign(SECRET, BODY)[len("sha256=") :],  # right digest, GitHub's prefix missing
        "sha256=" + "g" * 64,
        " ",
    ],
)
def test_a_signature_that_is_not_sha256_and_64_hex_digits_is_401(
    app: Flask, redis_conn: redis.Redis, signature: str
) -> None:
    status, text = post_signature(app, signature)
    assert status == 401
    assert text.startswith(("malformed signature:", "missing signature:"))
    assert Queue(EVENTS, connection=redis_conn).count == 0


def test_the_right_signature_in_upper_case_hex_is_still_accepted(
    app: Flask, redis_conn: redis.Redis
) -> None:
    digest = signatures.sign(SECRET, BODY)[len("sha256=") :]
    assert post_signature(app, "sha256=" + digest.upper())[0] == 202


class DroppingProxy:
    """A TCP proxy in front of Redis that cuts the connection the next `cuts` times the accept
    command (the one naming the payload key) goes by: before forwarding it (`after=False`:
    Redis never runs it) or after Redis ran it but before its answer gets back (`after=True`)."""

    def __init__(self, target: tuple[str, int], *, after: bool, cuts: int = 1) -> None:
        self.target, self.after, self.cuts = target, after, cuts
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dropped = threading.Event()
        # Every socket and thread of the proxy, for close(): a pump left blocked on a closed
        # socket's number would read from whatever a later test opens under that number.
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        with self._lock:
            self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        """A thread of the proxy's; called with the lock held, so close() sees every one."""
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
                # Per connection: whether Redis's next answer on it is to be swallowed.
                cut = threading.Event()
                for args in ((client, upstream, True, cut), (upstream, client, False, cut)):
                    self._start(self._pump, *args)

    def _pump(
        self, src: socket.socket, dst: socket.socket, from_client: bool, cut: threading.Event
    ) -> None:
        try:
            while data := src.recv(65536):
                if not from_client and cut.is_set():
                    break  # Redis ran the transaction; its answer never arrives
                if from_client and self.cuts and b"mlgate:payload:" in data:
                    self.cuts -= 1
                    if not self.after:
                        break  # EXEC never reaches Redis
                    cut.set()
                dst.sendall(data)
            else:
                return
            self.dropped.set()
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                # shutdown, not only close: the other pump thread may be blocked in recv on it.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def url(self, redis_url: str) -> str:
        parts = urlsplit(redis_url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        netloc[-1] = host
        return urlunsplit(parts._replace(netloc="@".join(netloc)))

    def close(self) -> None:
        """Stop accepting, cut every connection, and wait for every thread of the proxy to end;
        only then are the sockets closed, so no thread is left holding a socket's number."""
        with self._lock:
            self._closed = True
            sockets, threads = [self.listener, *self._sockets], list(self._threads)
        for sock in sockets:
            # shutdown wakes a thread blocked in accept() or recv() on it; close alone does not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=10)
        for sock in sockets:
            sock.close()
        alive = [t.name for t in threads if t.is_alive()]
        assert not alive, f"proxy threads still running: {alive}"


MakeProxy = Callable[[bool, int], DroppingProxy]


@pytest.fixture
def proxy_for(redis_url: str) -> Iterator[MakeProxy]:
    made: list[DroppingProxy] = []

    def make(after: bool, cuts: int) -> DroppingProxy:
        parts = urlsplit(redis_url)
        assert parts.hostname is not None and parts.port is not None, redis_url
        made.append(DroppingProxy((parts.hostname, parts.port), after=after, cuts=cuts))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


def deliver(app: Flask, delivery: str) -> tuple[int, str]:
    body = json.dumps(payload("push")).encode()
    with app.test_client() as client:
        response = client.post(
            "/webhooks/github", data=body, headers=webhook_headers("push", body, delivery=delivery)
        )
    return response.status_code, response.get_data(as_text=True)


def tcp_redis(redis_url: str) -> None:
    if urlsplit(redis_url).scheme != "redis":
        pytest.skip("the embedded Redis listens on a unix socket; CI gives a TCP Redis")


def test_a_connection_dropped_before_the_accept_is_retried_once_and_accepted_once(
    env: dict[str, str], redis_conn: redis.Redis, redis_url: str, proxy_for: MakeProxy
) -> None:
    tcp_redis(redis_url)
    proxy = proxy_for(False, 1)
    app = create_app(env | {"REDIS_URL": proxy.url(redis_url)})
    status, text = deliver(app, "d-drop-once")
    assert proxy.dropped.is_set()
    assert status == 202, text
    assert Queue(EVENTS, connection=redis_conn).job_ids == ["github-d-drop-once"]


def test_a_connection_dropped_before_the_accept_and_its_retry_is_503_then_redelivered(
    env: dict[str, str], redis_conn: redis.Redis, redis_url: str, proxy_for: MakeProxy
) -> None:
    tcp_redis(redis_url)
    proxy = proxy_for(False, 2)
    app = create_app(env | {"REDIS_URL": proxy.url(redis_url)})
    status, text = deliver(app, "d-drop-before")
    assert proxy.dropped.is_set() and proxy.cuts == 0
    assert status == 503, text
    assert deliveries.state(redis_conn, "github", "d-drop-before") is None
    assert Queue(EVENTS, connection=redis_conn).count == 0
    # GitHub (or the redelivery sweep) sends it again: now it goes through, once.
    assert deliver(app, "d-drop-before")[0] == 202
    assert Queue(EVENTS, connection=redis_conn).job_ids == ["github-d-drop-before"]


def test_a_connection_dropped_after_redis_ran_the_accept_is_not_a_second_enqueue(
    env: dict[str, str], redis_conn: redis.Redis, redis_url: str, proxy_for: MakeProxy
) -> None:
    tcp_redis(redis_url)
    proxy = proxy_for(True, 1)
    app = create_app(env | {"REDIS_URL": proxy.url(redis_url)})
    status, text = deliver(app, "d-drop-after")
    assert proxy.dropped.is_set()
    # Redis ran it; the client's retry finds the delivery recorded: the event is queued once.
    assert status == 200, text
    assert deliveries.state(redis_conn, "github", "d-drop-after") is DeliveryState.QUEUED
    assert Queue(EVENTS, connection=redis_conn).job_ids == ["github-d-drop-after"]
    assert deliver(app, "d-drop-after")[0] == 200
    assert Queue(EVENTS, connection=redis_conn).count == 1
