"""Process settings read from the environment (12-factor), only when asked, never at import."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot import logs
from bot.core.config import DURATION_EXPECTED, parse_duration
from bot.errors import SettingsError

DEFAULT_GITHUB_API_URL = "https://api.github.com"
# github.com's pages (the OAuth sign-in) live beside its API, not under it.
DEFAULT_GITHUB_WEB_URL = "https://github.com"
# GitHub Enterprise Server serves its API under /api/v3 of the host that serves its pages.
ENTERPRISE_API_SUFFIX = "/api/v3"
# Seconds before each retry of a failed job: bounded exponential backoff.
DEFAULT_RETRY_DELAYS = (10, 60, 300)
# How long a Semaphore run may wait for its pipeline before mlgate gives up on it: longer
# than a training run normally takes, short enough that a lost notification shows the same day.
DEFAULT_SEMAPHORE_RUN_TIMEOUT = 6 * 3600.0
DEFAULT_DATA_DIR = ".mlgate"
# How long a worker given SIGTERM lets its running job go on before it stops it and queues
# it again; a deployment's kill timeout (Kubernetes' terminationGracePeriodSeconds) must be
# longer, or the stop is a SIGKILL that only the scheduler's sweep recovers.
DEFAULT_SHUTDOWN_GRACE = 60.0
# MLGATE_SANDBOX: how commands a repository supplies run. `none` is the operator's explicit
# opt-out, logged at every run; there is no silent fallback when bubblewrap is missing.
SANDBOX_BWRAP = "bwrap"
SANDBOX_NONE = "none"
SANDBOX_MODES = (SANDBOX_BWRAP, SANDBOX_NONE)


@dataclass(frozen=True)
class Settings:
    """Everything a web or worker process needs to know about its deployment."""

    webhook_secrets: tuple[str, ...]
    redis_url: str
    github_api_url: str = DEFAULT_GITHUB_API_URL
    github_app_id: str = ""
    github_private_key: str = ""
    semaphore_api_url: str = ""
    semaphore_api_token: str = ""
    semaphore_webhook_secret: str = ""
    metrics_token: str = ""  # MLGATE_METRICS_TOKEN: a bearer GET /metrics asks for, when set
    public_url: str = ""
    repo_allowlist: tuple[str, ...] = ()
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR))
    retry_delays: tuple[int, ...] = DEFAULT_RETRY_DELAYS
    # Names (not values) of server variables trusted runs may see: MLGATE_RUNNER_SECRETS.
    runner_secrets: str = ""
    semaphore_run_timeout: float = DEFAULT_SEMAPHORE_RUN_TIMEOUT
    # MLGATE_SANDBOX: `bwrap` (default) or `none`.
    sandbox: str = SANDBOX_BWRAP
    # The App's OAuth client: the dashboard's "Sign in with GitHub"; both unset, no dashboard.
    github_client_id: str = ""
    github_client_secret: str = ""
    # MLGATE_SESSION_SECRET signs the dashboard's cookie; unset, it is derived from the first
    # webhook secret (see session_secret).
    session_secret_value: str = ""
    # MLGATE_SHUTDOWN_GRACE: seconds a running job may go on after SIGTERM.
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: os.environ); SettingsError names what is missing."""
        env = os.environ if env is None else env
        secrets = tuple(
            s.strip() for s in env.get("GITHUB_WEBHOOK_SECRET", "").split(",") if s.strip()
        )
        if not secrets:
            raise SettingsError(
                "GITHUB_WEBHOOK_SECRET is not set: set it to the webhook secret of the GitHub App "
                "(a comma-separated list is accepted while rotating secrets)"
            )
        redis_url = env.get("REDIS_URL", "")
        if not redis_url:
            raise SettingsError(
                "REDIS_URL is not set: point it at your Redis, or use `mlgate dev`, "
                "which starts an embedded one"
            )
        key = env.get("GITHUB_PRIVATE_KEY", "")
        key_path = env.get("GITHUB_PRIVATE_KEY_PATH", "")
        if not key and key_path:
            try:
                key = Path(key_path).read_text()
            except OSError as exc:
                raise SettingsError(
                    f"GITHUB_PRIVATE_KEY_PATH={key_path} cannot be read: {exc.strerror}"
                ) from exc
        # The text as given, escaped or not, is redacted from logs like the key itself.
        logs.register_secret(key)
        settings = cls(
            webhook_secrets=secrets,
            redis_url=redis_url,
            github_api_url=env.get("GITHUB_API_URL", DEFAULT_GITHUB_API_URL).rstrip("/"),
            github_app_id=env.get("GITHUB_APP_ID", ""),
            github_private_key=unescape_pem(key),
            semaphore_api_url=env.get("SEMAPHORE_API_URL", "").rstrip("/"),
            semaphore_api_token=env.get("SEMAPHORE_API_TOKEN", ""),
            semaphore_webhook_secret=env.get("SEMAPHORE_WEBHOOK_SECRET", ""),
            metrics_token=env.get("MLGATE_METRICS_TOKEN", ""),
            public_url=env.get("MLGATE_PUBLIC_URL", "").rstrip("/"),
            repo_allowlist=tuple(
                g.strip() for g in env.get("MLGATE_REPO_ALLOWLIST", "").split(",") if g.strip()
            ),
            data_dir=Path(env.get("MLGATE_DATA_DIR", DEFAULT_DATA_DIR)),
            retry_delays=_parse_delays(env.get("MLGATE_RETRY_DELAYS")),
            runner_secrets=env.get("MLGATE_RUNNER_SECRETS", ""),
            semaphore_run_timeout=_parse_timeout(env.get("MLGATE_SEMAPHORE_RUN_TIMEOUT")),
            sandbox=sandbox_mode(env),
            github_client_id=env.get("GITHUB_CLIENT_ID", "").strip(),
            github_client_secret=env.get("GITHUB_CLIENT_SECRET", "").strip(),
            session_secret_value=env.get("MLGATE_SESSION_SECRET", ""),
            shutdown_grace=shutdown_grace(env),
        )
        settings.register_secrets()
        return settings

    def register_secrets(self) -> None:
        """Tell the log redactor about every secret value these settings hold."""
        for value in (
            *self.webhook_secrets,
            self.github_private_key,
            self.semaphore_api_token,
            self.semaphore_webhook_secret,
            self.metrics_token,
            self.github_client_secret,
            self.session_secret_value,
        ):
            logs.register_secret(value)

    @property
    def dashboard_enabled(self) -> bool:
        """The dashboard answers only with the App's OAuth client to sign people in with."""
        return bool(self.github_client_id and self.github_client_secret)

    @property
    def session_secret(self) -> str:
        """The key that signs the dashboard's session cookie: MLGATE_SESSION_SECRET, else one
        derived from the first webhook secret (an HMAC of it, so the cookie key never equals
        the webhook secret; rotating that secret to the front signs everyone out)."""
        if self.session_secret_value:
            return self.session_secret_value
        first = self.webhook_secrets[0].encode()
        return hmac.new(first, b"mlgate dashboard session", hashlib.sha256).hexdigest()

    @property
    def github_web_url(self) -> str:
        """Where GitHub's pages are (the OAuth authorize page and token exchange): github.com
        for api.github.com, the host of an Enterprise Server's /api/v3, else the API URL
        itself (the emulator serves both on one base URL)."""
        api = self.github_api_url.rstrip("/")
        if api == DEFAULT_GITHUB_API_URL:
            return DEFAULT_GITHUB_WEB_URL
        return api.removesuffix(ENTERPRISE_API_SUFFIX)

    @property
    def secure_cookies(self) -> bool:
        """Cookies are sent over HTTPS only when the public URL is HTTPS."""
        return self.public_url.lower().startswith("https://")


def unescape_pem(text: str) -> str:
    """A PEM given on one line with `\\n` escapes (as .env files hold it), on its own lines."""
    # A PEM with real line breaks is left as it is: a backslash-n inside one is damage that
    # the key loader reports, not an escape.
    if "\n" in text.strip() or "\\n" not in text:
        return text
    return text.strip().replace("\\r\\n", "\n").replace("\\n", "\n")


def sandbox_mode(env: Mapping[str, str] | None = None) -> str:
    """MLGATE_SANDBOX from `env` (default: os.environ): `bwrap` unless set; SettingsError for
    anything but `bwrap` or `none`."""
    env = os.environ if env is None else env
    value = env.get("MLGATE_SANDBOX", "").strip() or SANDBOX_BWRAP
    return check_sandbox_mode(value, f"MLGATE_SANDBOX={value!r}")


def check_sandbox_mode(value: str, where: str = "sandbox") -> str:
    """`value` if it is a sandbox mode; SettingsError naming `where` otherwise."""
    if value not in SANDBOX_MODES:
        raise SettingsError(
            f"{where}: expected `bwrap` (run repository commands under bubblewrap) or `none` "
            "(run them unsandboxed, only where every repository's code is trusted)"
        )
    return value


def shutdown_grace(env: Mapping[str, str] | None = None) -> float:
    """MLGATE_SHUTDOWN_GRACE from `env` (default: os.environ) in seconds: 60 unless set;
    SettingsError for anything but a duration (`90s`, `2m`) or seconds (0 stops at once)."""
    env = os.environ if env is None else env
    value = env.get("MLGATE_SHUTDOWN_GRACE", "").strip()
    if not value:
        return DEFAULT_SHUTDOWN_GRACE
    if value in ("0", "0.0"):
        return 0.0
    try:
        return parse_duration(value)
    except ValueError:
        raise SettingsError(
            f"MLGATE_SHUTDOWN_GRACE={value!r}: expected {DURATION_EXPECTED}, such as 60s, "
            "or 0 to stop a running job at once"
        ) from None


def _parse_delays(value: str | None) -> tuple[int, ...]:
    if value is None or not value.strip():
        return DEFAULT_RETRY_DELAYS
    try:
        delays = tuple(int(part) for part in value.split(","))
    except ValueError:
        delays = (-1,)
    if any(d < 0 for d in delays) or len(delays) > 10:
        raise SettingsError(
            f"MLGATE_RETRY_DELAYS={value!r}: expected up to 10 comma-separated whole seconds, "
            "such as 10,60,300"
        )
    return delays


def _parse_timeout(value: str | None) -> float:
    if value is None or not value.strip():
        return DEFAULT_SEMAPHORE_RUN_TIMEOUT
    try:
        return parse_duration(value)
    except ValueError:
        raise SettingsError(
            f"MLGATE_SEMAPHORE_RUN_TIMEOUT={value!r}: expected {DURATION_EXPECTED}, such as 6h"
        ) from None
