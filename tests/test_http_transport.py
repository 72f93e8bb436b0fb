"""The retrying HTTP transport under both API clients, against a scripted server over real HTTP."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import pytest
import requests

from bot import logs
from bot.http_transport import (
    Call,
    Failure,
    FailureKind,
    HttpTransport,
    RetryLimits,
    RetryPolicy,
    Wait,
    parse_retry_after,
)
from bot.loopback import serve

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

LOGGER = "tests.http_transport"
# Long enough to tell "the server got the request but answered late" from a fast answer.
READ_TIMEOUT = 0.3
LATE_ANSWER = 3.0


@dataclass
class Answer:
    """One scripted answer; `delay` holds it back (cut short when the server stops)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"
    delay: float = 0.0


@dataclass
class Received:
    """What the server saw of one request, when it arrived."""

    method: str
    path: str
    query: str
    authorization: str | None
    at: float


class ScriptedServer:
    """A WSGI app that gives its scripted answers in order, then 200s, and records requests."""

    def __init__(self) -> None:
        self.url = ""
        self.script: list[Answer] = []
        self.received: list[Received] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        with self._lock:
            self.received.append(
                Received(
                    environ["REQUEST_METHOD"],
                    environ["PATH_INFO"],
                    environ.get("QUERY_STRING", ""),
                    environ.get("HTTP_AUTHORIZATION"),
                    time.monotonic(),
                )
            )
            answer = self.script.pop(0) if self.script else Answer()
            stopping = self.stopping
        if answer.delay:
            stopping.wait(answer.delay)
        headers = [("Content-Type", "application/json"), *answer.headers.items()]
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", headers)
        return [answer.body]

    def reset(self) -> None:
        """Forget the last test's script and requests; its late answers were cut short."""
        with self._lock:
            self.script, self.received = [], []
            self.stopping = threading.Event()

    def answer(self, *answers: Answer) -> None:
        self.script.extend(answers)


class GaveUp(Exception):
    """The test policy's error: it carries the transport's Failure for the assertions."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(f"{failure.kind.value} after {failure.attempts} tries: {failure.reason}")


class StrictRules(RetryPolicy):
    """The transport's default rules; a client only has to name its error."""

    def error(self, failure: Failure) -> Exception:
        return GaveUp(failure)


class RetryAfterRules(StrictRules):
    """Honours `retry-after` on 429 and 503, as RFC 9110 and RFC 6585 describe it."""

    def retry_after(self, response: requests.Response) -> float | None:
        value = response.headers.get("retry-after")
        if value is None or response.status_code not in (429, 503):
            return None
        return parse_retry_after(value, fallback=60.0)


# Stopping a server takes half a second (its poll interval), so the module shares one; each
# test starts it with an empty script and log, and cuts its own late answers short.
@pytest.fixture(scope="module")
def shared_server() -> Iterator[ScriptedServer]:
    app = ScriptedServer()
    with serve(app) as url:
        app.url = url
        yield app


@pytest.fixture
def server(shared_server: ScriptedServer) -> Iterator[ScriptedServer]:
    shared_server.reset()
    yield shared_server
    shared_server.stopping.set()


@pytest.fixture
def sleeps() -> list[float]:
    """The waits the transport asked for, in order; they are slept only with real_sleep."""
    return []


@pytest.fixture
def make_transport(sleeps: list[float]) -> Iterator[Callable[..., HttpTransport]]:
    """Transports on one session, 0.3 s read timeout; `limits` override RetryLimits' fields."""
    with requests.Session() as session:

        def make(*, real_sleep: bool = False, **limits: Any) -> HttpTransport:
            def sleep(seconds: float) -> None:
                sleeps.append(seconds)
                if real_sleep:
                    time.sleep(seconds)

            options: dict[str, Any] = {"timeout": (2.0, READ_TIMEOUT), **limits}
            return HttpTransport(
                "test",
                logging.getLogger(LOGGER),
                session=session,
                sleep=sleep,
                limits=RetryLimits(**options),
            )

        yield make


def call(
    server: ScriptedServer, method: str = "GET", path: str = "/thing", json: Any = None
) -> Call:
    """A call to the scripted server; only GETs count as idempotent."""
    return Call(method, server.url + path, path, idempotent=method == "GET", json=json)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextmanager
def hanging_up() -> Iterator[tuple[str, list[bytes]]]:
    """A port that reads each request, then closes the connection without answering."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    received: list[bytes] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2.0)
                received.append(conn.recv(65536))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def gives_up(transport: HttpTransport, request: Call, policy: RetryPolicy) -> Failure:
    with pytest.raises(GaveUp) as raised:
        transport.send(request, policy)
    return raised.value.failure


# -- 5xx and backoff -------------------------------------------------------------------------


def test_a_5xx_is_retried_and_the_last_allowed_try_may_succeed(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(Answer(502), Answer(503))
    transport = make_transport(max_tries=3, backoff_base=0.5)

    response = transport.send(call(server), StrictRules())

    assert response.status_code == 200
    assert len(server.received) == 3
    assert sleeps == [0.5, 1.0]


def test_5xx_on_every_try_gives_up_after_exactly_max_tries(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(Answer(502), Answer(503), Answer(500), Answer(200))
    transport = make_transport(max_tries=3, backoff_base=0.5)

    failure = gives_up(transport, call(server), StrictRules())

    assert (failure.kind, failure.attempts, failure.status) == (FailureKind.EXHAUSTED, 3, 500)
    assert len(server.received) == 3
    # No backoff after the last try: the caller hears at once.
    assert sleeps == [0.5, 1.0]


def test_backoff_doubles_from_its_base_and_stops_at_its_cap(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(*[Answer(503)] * 6)
    transport = make_transport(max_tries=6, backoff_base=0.25, backoff_cap=1.5)

    failure = gives_up(transport, call(server), StrictRules())

    assert failure.attempts == 6
    assert sleeps == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert RetryLimits(backoff_base=0.5, backoff_cap=8.0).backoff(10) == 8.0


def test_backoff_is_really_waited_between_tries(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport]
) -> None:
    server.answer(Answer(502))
    transport = make_transport(real_sleep=True, backoff_base=0.2)

    transport.send(call(server), StrictRules())

    first, second = server.received
    assert second.at - first.at >= 0.2


def test_a_5xx_to_a_call_that_is_not_idempotent_is_not_retried(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(Answer(502))

    failure = gives_up(make_transport(), call(server, "POST"), StrictRules())

    assert (failure.kind, failure.status, failure.attempts) == (FailureKind.NOT_RESENT, 502, 1)
    assert [r.method for r in server.received] == ["POST"]
    assert sleeps == []


def test_a_4xx_is_not_retried(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(Answer(404, body=b'{"message": "Not Found"}'))

    failure = gives_up(make_transport(), call(server), StrictRules())

    assert (failure.kind, failure.status, failure.attempts) == (FailureKind.REFUSED, 404, 1)
    assert failure.response is not None and failure.response.json() == {"message": "Not Found"}
    assert len(server.received) == 1 and sleeps == []


def test_a_refusal_gets_one_chance_to_recover_and_no_more(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    recoveries: list[int] = []

    class Reauthenticating(StrictRules):
        def recover(self, call: Call, response: requests.Response) -> bool:
            recoveries.append(response.status_code)
            return response.status_code == 401

    server.answer(Answer(401), Answer(401))

    failure = gives_up(make_transport(), call(server), Reauthenticating())

    assert (failure.kind, failure.status) == (FailureKind.REFUSED, 401)
    assert recoveries == [401]
    assert len(server.received) == 2 and sleeps == []


def test_headers_of_the_policy_are_asked_again_for_every_try(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport]
) -> None:
    tokens = iter(["Bearer first", "Bearer second"])

    class Rotating(StrictRules):
        def auth_headers(self) -> dict[str, str]:
            return {"Authorization": next(tokens)}

    server.answer(Answer(503))

    make_transport().send(call(server), Rotating())

    assert [r.authorization for r in server.received] == ["Bearer first", "Bearer second"]


def test_at_least_one_try_is_made_whatever_max_tries_says(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport]
) -> None:
    server.answer(Answer(503))

    failure = gives_up(make_transport(max_tries=0), call(server), StrictRules())

    assert (failure.kind, failure.attempts) == (FailureKind.EXHAUSTED, 1)
    assert len(server.received) == 1


# -- no answer: timeouts and connections ----------------------------------------------------


def test_a_call_that_is_not_idempotent_is_not_resent_after_a_read_timeout(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(Answer(201, delay=LATE_ANSWER))

    started = time.monotonic()
    failure = gives_up(make_transport(), call(server, "POST", json={"a": 1}), StrictRules())

    # The server got it: a second POST could act twice.
    assert [r.method for r in server.received] == ["POST"]
    assert (failure.kind, failure.status, failure.attempts) == (FailureKind.NOT_RESENT, 0, 1)
    assert failure.reason.startswith("ReadTimeout: ")
    assert time.monotonic() - started < LATE_ANSWER / 2
    assert sleeps == []


def test_an_idempotent_call_is_resent_after_a_read_timeout(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(Answer(delay=LATE_ANSWER), Answer(body=b'{"ok": true}'))

    response = make_transport(backoff_base=0.5).send(call(server), StrictRules())

    assert response.json() == {"ok": True}
    assert len(server.received) == 2
    assert sleeps == [0.5]


def test_the_read_timeout_bounds_every_try(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport]
) -> None:
    server.answer(*[Answer(delay=LATE_ANSWER)] * 3)
    transport = make_transport(max_tries=3, timeout=(2.0, 0.2))

    started = time.monotonic()
    failure = gives_up(transport, call(server), StrictRules())
    elapsed = time.monotonic() - started

    assert (failure.kind, failure.attempts) == (FailureKind.EXHAUSTED, 3)
    assert failure.reason.startswith("ReadTimeout: ")
    assert len(server.received) == 3
    # Three tries of 0.2 s each; one late answer alone would take 3 s.
    assert 0.6 <= elapsed < 1.5


def test_a_call_that_never_connected_is_resent_even_when_not_idempotent(
    make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    request = Call("POST", url + "/workflows", "/workflows", idempotent=False, json={})

    failure = gives_up(make_transport(max_tries=3, backoff_base=0.5), request, StrictRules())

    assert (failure.kind, failure.status, failure.attempts) == (FailureKind.EXHAUSTED, 0, 3)
    assert failure.reason.startswith("ConnectionError: ")
    assert sleeps == [0.5, 1.0]


def test_a_call_that_is_not_idempotent_is_not_resent_after_the_connection_drops(
    make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    with hanging_up() as (url, received):
        request = Call("POST", url + "/workflows", "/workflows", idempotent=False, json={})
        failure = gives_up(make_transport(), request, StrictRules())

    # The request reached the server before it hung up: it may have acted on it.
    assert len(received) == 1 and received[0].startswith(b"POST /workflows ")
    assert (failure.kind, failure.attempts) == (FailureKind.NOT_RESENT, 1)
    assert failure.reason.startswith("ConnectionError: ")
    assert sleeps == []


def test_an_idempotent_call_is_resent_after_the_connection_drops(
    make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    with hanging_up() as (url, received):
        request = Call("GET", url + "/thing", "/thing", idempotent=True)
        failure = gives_up(make_transport(max_tries=3, backoff_base=0.5), request, StrictRules())

    assert len(received) == 3
    assert (failure.kind, failure.attempts) == (FailureKind.EXHAUSTED, 3)
    assert sleeps == [0.5, 1.0]


# -- retry-after -----------------------------------------------------------------------------


def test_retry_after_is_waited_out_before_the_next_try(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(Answer(429, headers={"Retry-After": "1"}))

    response = make_transport(real_sleep=True).send(call(server), RetryAfterRules())

    assert response.status_code == 200
    first, second = server.received
    assert second.at - first.at >= 1.0
    assert sleeps == [1.0]


def test_retry_after_as_an_http_date_is_waited_out_until_then(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    then = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    server.answer(Answer(503, headers={"Retry-After": format_datetime(then, usegmt=True)}))

    make_transport().send(call(server), RetryAfterRules())

    [wait] = sleeps
    assert 28.0 <= wait <= 30.0


def test_retry_after_longer_than_max_wait_gives_up_without_waiting(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(Answer(429, headers={"Retry-After": "61"}))

    failure = gives_up(make_transport(max_wait=60.0), call(server), RetryAfterRules())

    assert (failure.kind, failure.status, failure.retry_after) == (
        FailureKind.WAIT_TOO_LONG,
        429,
        61.0,
    )
    assert len(server.received) == 1 and sleeps == []


def test_retry_after_of_exactly_max_wait_is_waited(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(Answer(429, headers={"Retry-After": "60"}))

    make_transport(max_wait=60.0).send(call(server), RetryAfterRules())

    assert sleeps == [60.0]


def test_retry_after_counts_against_the_tries(
    server: ScriptedServer, make_transport: Callable[..., HttpTransport], sleeps: list[float]
) -> None:
    server.answer(*[Answer(429, headers={"Retry-After": "2"})] * 3)

    failure = gives_up(make_transport(max_tries=3), call(server), RetryAfterRules())

    assert (failure.kind, failure.attempts, failure.status) == (FailureKind.EXHAUSTED, 3, 429)
    assert sleeps == [2.0, 2.0]


def test_a_policy_may_take_over_the_retry_after_wait(
    server: ScriptedServer,
    make_transport: Callable[..., HttpTransport],
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared_pause: list[float] = []

    class SharedPause(RetryAfterRules):
        """Like GitHub's rules: the pause is recorded for all, and waited before each try."""

        def on_retry_after(self, call: Call, seconds: float) -> float:
            shared_pause.append(seconds)
            return 0.0

        def before_attempt(self, call: Call, wait: Wait) -> None:
            if shared_pause:
                wait(shared_pause.pop(), "shared pause")

    caplog.set_level(logging.INFO, logger=LOGGER)
    server.answer(Answer(429, headers={"Retry-After": "3"}))

    make_transport().send(call(server), SharedPause())

    assert sleeps == [3.0]
    assert "test request waits 3.00 s (shared pause)" in caplog.text


def test_retry_after_is_read_as_seconds_or_a_date_or_else_the_fallback() -> None:
    assert parse_retry_after("7", fallback=60.0) == 7.0
    assert parse_retry_after("-3", fallback=60.0) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", fallback=60.0) == 0.0
    assert parse_retry_after("soon", fallback=60.0) == 60.0
    assert parse_retry_after("nan", fallback=60.0) == 60.0
    assert parse_retry_after("inf", fallback=60.0) == 60.0


# -- logging ---------------------------------------------------------------------------------


def test_every_try_is_logged_once_with_its_facts(
    server: ScriptedServer,
    make_transport: Callable[..., HttpTransport],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server.answer(Answer(503))

    make_transport().send(call(server, path="/things/7"), StrictRules())

    records = [r for r in caplog.records if r.name == LOGGER]
    assert [r.getMessage() for r in records] == [
        "test GET /things/7 -> 503",
        "test GET /things/7 -> 200",
    ]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
    facts = [r.__dict__ for r in records]
    assert [(f["method"], f["path"], f["status"], f["attempt"]) for f in facts] == [
        ("GET", "/things/7", 503, 1),
        ("GET", "/things/7", 200, 2),
    ]
    assert all(f["duration_ms"] >= 0 for f in facts)


def test_secrets_are_redacted_in_the_log_line(
    make_transport: Callable[..., HttpTransport], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "transport-test-secret-4f1c9a"
    logs.register_secret(secret)
    token_shaped = "ghs_" + "a1B2" * 9
    header_secret = "Bearer header-secret-that-nobody-registered"

    class Authorizing(StrictRules):
        def auth_headers(self) -> dict[str, str]:
            return {"Authorization": header_secret}

    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{closed_port()}"
    path = f"/hooks/{secret}/{token_shaped}"
    request = Call("GET", url + path, path, idempotent=True, params={"key": secret})

    failure = gives_up(make_transport(max_tries=2), request, Authorizing())

    records = [r for r in caplog.records if r.name == LOGGER]
    assert [r.__dict__["path"] for r in records] == ["/hooks/***/***"] * 2
    assert all("ConnectionError" in r.__dict__["error"] for r in records)
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for value in (secret, token_shaped, header_secret):
        assert value not in logged
        assert value not in failure.reason
    assert "/hooks/***/***" in caplog.text
