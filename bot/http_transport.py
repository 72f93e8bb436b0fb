"""One retrying HTTP transport under both API clients: timeouts, backoff, retry-after, logs."""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from bot import logs

# Requests without a timeout can hang a worker forever: (connect, read) seconds.
TIMEOUT = (5.0, 30.0)
MAX_TRIES = 4
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
# Refuse to block a worker longer than this on a retry-after; the caller raises instead, and
# the job is retried later by its queue.
MAX_WAIT = 60.0

# Waits the policy asks for before a try: (seconds, reason for the log line).
Wait = Callable[[float, str], None]


@dataclass(frozen=True)
class RetryLimits:
    """Every bound of one call: tries, backoff, the longest retry-after waited, timeouts."""

    max_tries: int = MAX_TRIES
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    max_wait: float = MAX_WAIT
    timeout: tuple[float, float] = TIMEOUT

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after try number `attempt` failed: doubling from the base, capped."""
        return float(min(self.backoff_base * 2 ** (attempt - 1), self.backoff_cap))


@dataclass(frozen=True)
class Call:
    """One API request as its client means it; `path` names it in log lines and errors."""

    method: str
    url: str
    path: str
    # True when sending it twice has the effect of sending it once.
    idempotent: bool
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class FailureKind(Enum):
    """Why the transport gave up on a call."""

    # An answer that trying again would not change (a 4xx the policy cannot recover from).
    REFUSED = "refused"
    # Not idempotent, and it may have arrived: sending it again could act twice.
    NOT_RESENT = "not resent"
    # Still failing after the bounded tries.
    EXHAUSTED = "exhausted"
    # The server asks to wait longer than the caller may block.
    WAIT_TOO_LONG = "wait too long"


@dataclass(frozen=True)
class Failure:
    """The facts of a call given up on; the policy turns them into its client's exception."""

    kind: FailureKind
    call: Call
    attempts: int
    # The last answer; None when the last try got none.
    response: requests.Response | None = None
    # Without an answer: the exception's type and text, secrets redacted.
    reason: str = ""
    # WAIT_TOO_LONG: the seconds the server asked for.
    retry_after: float | None = None

    @property
    def status(self) -> int:
        """The last answer's HTTP status; 0 when there was no answer."""
        return self.response.status_code if self.response is not None else 0


class RetryPolicy(ABC):
    """What one API's client decides for the transport; the defaults are the strict rules.

    A client subclasses it where its API differs, and says which exception each failure is.
    """

    def before_attempt(self, call: Call, wait: Wait) -> None:
        """Run before every try, e.g. to take a pacing token; may `wait` or raise."""
        return None

    def auth_headers(self) -> dict[str, str]:
        """Headers computed again for every try: a token may be replaced between tries."""
        return {}

    def may_resend(self, call: Call, exc: requests.RequestException) -> bool:
        """Whether a try that got no answer may be sent again."""
        return call.idempotent or never_sent(exc)

    def retry_after(self, response: requests.Response) -> float | None:
        """Seconds the server asks to wait before trying again; None if it does not ask.

        None by default: an API with a rate-limit protocol says how to read it.
        """
        return None

    def on_retry_after(self, call: Call, seconds: float) -> float:
        """A retry-after arrived; return the seconds the transport itself still waits.

        A client whose limit is shared (by an installation, say) records it here and waits
        for it in before_attempt instead, returning 0.
        """
        return seconds

    def answered(self, call: Call, response: requests.Response) -> None:
        """Run on every answer below 400, e.g. to read rate-limit headers."""
        return None

    def tried(self, call: Call, response: requests.Response | None) -> None:
        """Run once per try with its answer, whatever it is (None: no answer), e.g. to count
        requests."""
        return None

    def retry_server_error(self, call: Call, response: requests.Response) -> bool:
        """Whether a 5xx may be retried: it arrived, so only if acting twice is harmless."""
        return call.idempotent

    def recover(self, call: Call, response: requests.Response) -> bool:
        """Once per call: mend a refused answer (a revoked token, say) and try again at once."""
        return False

    def log_fields(self, response: requests.Response | None) -> dict[str, object]:
        """Extra fields of this API's log lines (`response` is None without an answer)."""
        return {}

    @abstractmethod
    def error(self, failure: Failure) -> Exception:
        """The client's exception for a call the transport gave up on."""


class HttpTransport:
    """Sends calls through one requests.Session within RetryLimits, by a RetryPolicy's rules."""

    def __init__(
        self,
        service: str,
        logger: logging.Logger,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limits: RetryLimits | None = None,
    ) -> None:
        """`service` starts every log line ("github GET /x -> 200"), written to `logger`."""
        self.service = service
        self.limits = limits if limits is not None else RetryLimits()
        self._logger = logger
        self._session = session if session is not None else requests.Session()
        self._sleep = sleep

    def send(self, call: Call, policy: RetryPolicy) -> requests.Response:
        """Send `call` until it is answered below 400; raise `policy.error(...)` otherwise."""
        limits = self.limits

        def wait(seconds: float, reason: str) -> None:
            self._wait(call, policy, seconds, reason)

        attempt = 0
        recovered = False
        while True:
            attempt += 1
            policy.before_attempt(call, wait)
            started = time.monotonic()
            try:
                response = self._session.request(
                    call.method,
                    call.url,
                    json=call.json,
                    params=call.params,
                    headers={**call.headers, **policy.auth_headers()},
                    timeout=limits.timeout,
                )
            except requests.RequestException as exc:
                reason = f"{type(exc).__name__}: {logs.redact(str(exc))}"
                self._log(call, policy, None, started, attempt, reason)
                policy.tried(call, None)
                if not policy.may_resend(call, exc):
                    raise policy.error(
                        Failure(FailureKind.NOT_RESENT, call, attempt, reason=reason)
                    ) from exc
                if attempt >= limits.max_tries:
                    raise policy.error(
                        Failure(FailureKind.EXHAUSTED, call, attempt, reason=reason)
                    ) from exc
                self._sleep(limits.backoff(attempt))
                continue

            status = response.status_code
            self._log(call, policy, response, started, attempt, None)
            policy.tried(call, response)
            if status < 400:
                policy.answered(call, response)
                return response

            asked = policy.retry_after(response)
            if asked is not None:
                own_wait = policy.on_retry_after(call, asked)
                if asked > limits.max_wait:
                    raise policy.error(
                        Failure(
                            FailureKind.WAIT_TOO_LONG, call, attempt, response, retry_after=asked
                        )
                    )
                if attempt >= limits.max_tries:
                    raise policy.error(Failure(FailureKind.EXHAUSTED, call, attempt, response))
                wait(own_wait, "retry-after")
                continue
            if status >= 500:
                if not policy.retry_server_error(call, response):
                    raise policy.error(Failure(FailureKind.NOT_RESENT, call, attempt, response))
                if attempt >= limits.max_tries:
                    raise policy.error(Failure(FailureKind.EXHAUSTED, call, attempt, response))
                self._sleep(limits.backoff(attempt))
                continue
            if not recovered and policy.recover(call, response):
                recovered = True
                continue
            raise policy.error(Failure(FailureKind.REFUSED, call, attempt, response))

    def _wait(self, call: Call, policy: RetryPolicy, seconds: float, reason: str) -> None:
        if seconds <= 0:
            return
        self._logger.info(
            "%s request waits %.2f s (%s)",
            self.service,
            seconds,
            reason,
            extra={
                "method": call.method,
                "path": logs.redact(call.path),
                "wait_s": round(seconds, 3),
                **policy.log_fields(None),
            },
        )
        self._sleep(seconds)

    def _log(
        self,
        call: Call,
        policy: RetryPolicy,
        response: requests.Response | None,
        started: float,
        attempt: int,
        error: str | None,
    ) -> None:
        status = response.status_code if response is not None else None
        path = logs.redact(call.path)
        fields: dict[str, object] = {
            "method": call.method,
            "path": path,
            "status": status,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            "attempt": attempt,
            **policy.log_fields(response),
        }
        if error is not None:
            fields["error"] = error
        self._logger.log(
            logging.INFO if status is not None and status < 400 else logging.WARNING,
            "%s %s %s -> %s",
            self.service,
            call.method,
            path,
            status if status is not None else "no answer",
            extra=fields,
        )


def never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    reason: object = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    # NewConnectionError covers refused connections and DNS failures (NameResolutionError);
    # "Connection aborted" (ProtocolError) may come after the request was sent.
    return isinstance(reason, NewConnectionError)


def parse_retry_after(value: str, *, fallback: float) -> float:
    """retry-after is delta-seconds or an HTTP date (RFC 9110, section 10.2.3); `fallback`
    stands for a value that is neither."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return fallback
    # float() also reads "nan" and "inf", which no wait can honour.
    return max(seconds, 0.0) if math.isfinite(seconds) else fallback
