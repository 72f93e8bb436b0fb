"""An HTTP/1.1 load generator: asyncio, raw requests on keep-alive connections.

Closed loop by default (each connection sends its next request when the answer arrives), or
open loop at a fixed rate, where latency counts from the time a request was due, so that a
server falling behind is not hidden by the generator waiting for it (coordinated omission).

Pure Python so that the benchmark runs wherever Python does; one event loop with protocol
callbacks costs a few tens of microseconds per request, far below what a Flask request costs,
and the result reports its own CPU use so that a saturated generator shows.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field

from bench.webhook_ack.payloads import Template, delivery_id

_WATCHDOG_INTERVAL = 0.25
# Consecutive failed connects after which a connection gives up: the server is gone.
_MAX_CONNECT_FAILURES = 20


@dataclass
class PhaseResult:
    """What one connection-count x duration phase against one server measured."""

    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    # Ids answered 2xx: the server said it holds them (a 200 may be a duplicate of its own
    # timed-out write), so each must have exactly one job; any other answer, none.
    acknowledged: list[str] = field(default_factory=list)
    accepted_status: int = 202  # what the server answers a new delivery it accepts
    elapsed: float = 0.0
    client_cpu: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_ns)

    @property
    def errors(self) -> int:
        """Answers other than `accepted_status`, plus requests that got no answer at all."""
        wrong = sum(n for status, n in self.statuses.items() if status != self.accepted_status)
        return wrong + sum(self.failures.values())


class _Load:
    """State shared by the connections of one phase."""

    def __init__(
        self,
        templates: tuple[Template, ...],
        run: str,
        phase: int,
        max_requests: int,
        interval_ns: int,
        due_ns: list[int],
        accepted_status: int,
    ) -> None:
        self.templates = templates
        # Open loop: each connection sends every interval_ns, its next request due at due_ns[i].
        self.interval_ns = interval_ns
        self.due_ns = due_ns
        self.run = run
        self.phase = phase
        self.max_requests = max_requests
        self.started = 0
        self.stopping = False
        self.result = PhaseResult(accepted_status=accepted_status)
        self.last_finish = 0.0
        self.connections: set[_Connection] = set()

    def may_start(self) -> bool:
        if self.stopping:
            return False
        if self.max_requests and self.started >= self.max_requests:
            self.stopping = True
            return False
        return True

    def stop(self) -> None:
        self.stopping = True

    def record(self, status: int, latency_ns: int, delivery: str) -> None:
        self.result.latencies_ns.append(latency_ns)
        self.result.statuses[status] += 1
        if 200 <= status < 300:
            self.result.acknowledged.append(delivery)
        self.last_finish = time.perf_counter()

    def fail(self, reason: str) -> None:
        self.result.failures[reason] += 1
        self.last_finish = time.perf_counter()


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending a request, awaiting its answer, sending the next."""

    def __init__(self, load: _Load, index: int, seq: int, closed: asyncio.Future[int]) -> None:
        self.load = load
        self.index = index
        self.seq = seq
        self.closed = closed
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent_at = 0  # perf_counter_ns of the request in flight (or due); 0 when none is
        self.delivery = ""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.load.connections.add(self)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.timer = None
        load = self.load
        if load.interval_ns and not load.stopping:
            wait_ns = load.due_ns[self.index] - time.perf_counter_ns()
            if wait_ns > 0:
                self.timer = asyncio.get_running_loop().call_later(wait_ns / 1e9, self._send)
                return
        if not load.may_start():
            self.transport.close()
            return
        load.started += 1
        template = load.templates[(self.index + self.seq) % len(load.templates)]
        self.delivery = delivery_id(load.run, load.phase, self.index, self.seq)
        self.seq += 1
        if load.interval_ns:
            self.sent_at = load.due_ns[self.index]
            load.due_ns[self.index] += load.interval_ns
        else:
            self.sent_at = time.perf_counter_ns()
        self.transport.write(template.request(self.delivery))

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if not self.sent_at:
            self.give_up("answer without a request")
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            self.give_up("malformed status line")
            return
        length = -1
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value) if value.strip().isdigit() else -1
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if length < 0:
            self.give_up("answer without Content-Length")
            return
        if len(self.buffer) < end + 4 + length:
            return
        latency = time.perf_counter_ns() - self.sent_at
        del self.buffer[: end + 4 + length]
        self.sent_at = 0
        self.load.record(status, latency, self.delivery)
        if close:
            self.transport.close()
        else:
            self._send()

    def give_up(self, reason: str) -> None:
        assert self.transport is not None
        if self.sent_at:
            self.load.fail(reason)
            self.sent_at = 0
        self.transport.abort()

    def timed_out(self, now_ns: int, timeout_ns: int) -> bool:
        return bool(self.sent_at) and now_ns - self.sent_at > timeout_ns

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.sent_at:
            self.load.fail("connection lost" if exc is None else type(exc).__name__)
            self.sent_at = 0
        self.load.connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(self.seq)


async def _drive(load: _Load, index: int, host: str, port: int) -> None:
    """Keep one connection busy until the phase stops, reconnecting if the server closes it."""
    loop = asyncio.get_running_loop()
    seq = 0
    connect_failures = 0
    while load.may_start():
        closed: asyncio.Future[int] = loop.create_future()
        try:
            await loop.create_connection(
                functools.partial(_Connection, load, index, seq, closed), host, port
            )
        except OSError as exc:
            load.fail(f"connect: {type(exc).__name__}")
            connect_failures += 1
            if connect_failures >= _MAX_CONNECT_FAILURES:
                return
            await asyncio.sleep(0.05)
            continue
        connect_failures = 0
        seq = await closed


async def _watchdog(load: _Load, timeout: float) -> None:
    """Abort requests that get no answer within `timeout`: they count as errors."""
    timeout_ns = int(timeout * 1e9)
    while True:
        await asyncio.sleep(_WATCHDOG_INTERVAL)
        now = time.perf_counter_ns()
        for connection in list(load.connections):
            if connection.timed_out(now, timeout_ns):
                connection.give_up("timeout")


async def _phase(
    load: _Load, host: str, port: int, concurrency: int, duration: float, timeout: float
) -> None:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    start_ns = time.perf_counter_ns()
    # Stagger the connections so that an open-loop rate arrives evenly, not in bursts of N.
    load.due_ns[:] = [start_ns + i * load.interval_ns // concurrency for i in range(concurrency)]
    loop.call_later(duration, load.stop)
    watchdog = asyncio.create_task(_watchdog(load, timeout))
    drivers = [asyncio.create_task(_drive(load, i, host, port)) for i in range(concurrency)]
    try:
        # Requests in flight at the deadline finish (or time out); none starts after it.
        done, pending = await asyncio.wait(
            drivers, timeout=duration + timeout + 2 * _WATCHDOG_INTERVAL
        )
    finally:
        # Also on Ctrl-C: open connections would hold up the servers' graceful shutdown.
        for connection in list(load.connections):
            connection.give_up("timeout")
    for task in pending:
        task.cancel()
    watchdog.cancel()
    await asyncio.gather(*pending, watchdog, return_exceptions=True)
    for task in done:
        task.result()
    load.result.elapsed = max(load.last_finish, started) - started


def run_phase(
    host: str,
    port: int,
    templates: tuple[Template, ...],
    *,
    run: str,
    phase: int,
    concurrency: int,
    duration: float,
    max_requests: int = 0,
    rate: float = 0.0,
    timeout: float = 10.0,
    accepted_status: int = 202,
) -> PhaseResult:
    """Load `concurrency` connections for `duration` seconds or `max_requests` requests.

    With `rate` (requests/s over all connections) the load is open loop, else closed loop.
    """
    interval_ns = int(concurrency / rate * 1e9) if rate > 0 else 0
    load = _Load(
        templates, run, phase, max_requests, interval_ns, [0] * concurrency, accepted_status
    )
    gc.collect()
    gc.disable()  # a collection pause would show up as server latency
    cpu = time.process_time()
    try:
        asyncio.run(_phase(load, host, port, concurrency, duration, timeout))
    finally:
        load.result.client_cpu = time.process_time() - cpu
        gc.enable()
    return load.result
