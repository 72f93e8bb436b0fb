"""LoopbackServer: a WSGI app over HTTP on 127.0.0.1 in a thread, with a request log and faults."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeVar

from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("bot.loopback")

# How often the serving thread looks for stop(): a stop takes at most this long.
_SERVER_POLL = 0.05
_STOP_TIMEOUT = 5.0


class LoopbackError(RuntimeError):
    """A LoopbackServer was used out of order: started twice, or asked its URL when stopped."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request a server answered, as tests inspect it."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    body: Any
    # How the caller authenticated, in the served API's terms ("jwt", "installation", "token",
    # "none", "invalid", ...).
    auth: str


@dataclass
class RequestRule:
    """Applies to the next `remaining` requests whose method is `method` (or "*") and whose
    path matches `pattern` (re.search)."""

    method: str
    pattern: re.Pattern[str]
    remaining: int


@dataclass
class Fault(RequestRule):
    """An injected answer, given after `delay` seconds instead of acting on the request."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None
    delay: float


Rule = TypeVar("Rule", bound=RequestRule)


def take_rule(rules: list[Rule], method: str, path: str) -> Rule | None:
    """The first rule for this request, used up once (removed when spent); the caller holds
    the lock that guards `rules`."""
    for rule in rules:
        if rule.method in ("*", method) and rule.pattern.search(path):
            rule.remaining -= 1
            if rule.remaining <= 0:
                rules.remove(rule)
            return rule
    return None


class _QuietHandler(WSGIRequestHandler):
    # HTTP/1.0 closes every connection after its answer, so no keep-alive thread outlives stop().
    protocol_version = "HTTP/1.0"
    # A client that connects and sends nothing must not keep a thread (and stop()) waiting.
    timeout = 10

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s", self.requestline, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.debug(message, *args)


class LoopbackServer:
    """Serves `app` over real HTTP on 127.0.0.1, on a free port, from a thread; a request
    log, injected faults and latency for the emulators that build on it."""

    def __init__(self, app: WSGIApplication | None = None, *, name: str = "loopback") -> None:
        # None: a subclass sets `app` before start() (its app needs the finished object).
        self.app = app
        self.name = name
        # Seconds every request waits before the app sees it.
        self.latency: float = 0.0
        self._base_url = "http://127.0.0.1:0"
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Guards the request log and the faults; a subclass keeps its own lock for its state.
        self._server_lock = threading.Lock()
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve on 127.0.0.1 on a free port, from a daemon thread."""
        if self._server is not None:
            raise LoopbackError(f"{self.name} is already running")
        if self.app is None:
            raise LoopbackError(f"{self.name} has no app to serve")
        self._stopping.clear()
        server = make_server(
            "127.0.0.1", 0, self._serve, threaded=True, request_handler=_QuietHandler
        )
        # Non-daemon request threads are tracked by socketserver, so that server_close()
        # joins them and stop() leaves no thread behind.
        if isinstance(server, ThreadedWSGIServer):
            server.daemon_threads = False
            server.block_on_close = True
        # A client that connects and resets before accept() leaves the listening socket
        # "readable" with nothing to accept: a blocking accept() would then hang the serving
        # thread, and stop() with it. Non-blocking, that accept fails and serving goes on
        # (accepted connections are blocking again: Python sets them so).
        server.socket.setblocking(False)
        self._server = server
        self._base_url = f"http://127.0.0.1:{server.server_port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _SERVER_POLL},
            name=self.name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for requests in flight (pauses are cut short)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None and thread is not None:
            self._stopping.set()
            server.shutdown()
            thread.join(_STOP_TIMEOUT)
            server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, while the server runs."""
        if self._server is None:
            raise LoopbackError(f"{self.name} is not running: call start() first")
        return self._base_url

    def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if the server stops meanwhile."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.pause(self.latency)
        assert self.app is not None  # start() refuses to serve without one
        return self.app(environ, start_response)

    # -- request log --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far (a snapshot)."""
        with self._server_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._server_lock:
            self._requests.clear()

    def record(self, request: RecordedRequest) -> None:
        """Add an answered request to the log (the app knows its status and caller)."""
        with self._server_lock:
            self._requests.append(request)

    # -- faults -------------------------------------------------------------------------------

    def inject_fault(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` requests whose method matches (or "*") and whose path
        matches the regex `path_pattern` (re.search) with `status`, after `delay` seconds,
        without acting on them."""
        fault = Fault(
            method=method.upper(),
            pattern=re.compile(path_pattern),
            remaining=times,
            status=status,
            headers=dict(headers or {}),
            body=body,
            delay=delay,
        )
        with self._server_lock:
            self._faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The fault this request gets, once its delay has passed; None: act on it."""
        with self._server_lock:
            fault = take_rule(self._faults, method, path)
        if fault is not None:
            self.pause(fault.delay)
        return fault


class RequestApp:
    """A WSGI app written as one method, from a werkzeug Request to its Response."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.respond(Request(environ))(environ, start_response)

    def respond(self, request: Request) -> Response:
        raise NotImplementedError


@contextmanager
def serve(app: WSGIApplication) -> Iterator[str]:
    """Serve `app` over real HTTP on 127.0.0.1 while the block runs; yields its base URL."""
    with LoopbackServer(app) as server:
        yield server.base_url
