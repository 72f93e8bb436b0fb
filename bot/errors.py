"""Named exceptions of mlgate, in one place; each says what went wrong and what to do."""

from __future__ import annotations


class MlgateError(Exception):
    """Base of every error mlgate raises on purpose."""


class SettingsError(MlgateError):
    """The process environment is missing or misstates a setting."""


class RedisUnavailable(MlgateError):
    """Redis could not be reached in time."""


class GitHubError(MlgateError):
    """GitHub answered a request with an error the client does not retry."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        super().__init__(f"GitHub answered {status} to {method} {path}: {message}")


class GitHubNotFound(GitHubError):
    """404: the resource does not exist, or the installation cannot see it."""


class GitHubValidationFailed(GitHubError):
    """422: GitHub refused the request body."""


class GitHubRetriesExhausted(GitHubError):
    """GitHub kept answering 5xx or rate limits after the bounded retries."""


class GitHubRateLimited(GitHubError):
    """GitHub asked to wait longer than the client may block; retry the job after `retry_after`."""

    def __init__(
        self, method: str, path: str, status: int, message: str, retry_after: float
    ) -> None:
        self.retry_after = retry_after
        super().__init__(method, path, status, message)


class RepoConfigError(MlgateError):
    """`.github/mlgate.yml` is invalid; `problems` lists `file:line key: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ParameterError(MlgateError):
    """`/retrain key=value` arguments do not fit `retrain.parameters`; `problems` says how."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DvcFileError(MlgateError):
    """A `.dvc`, `dvc.lock`, `dvc.yaml` or params file is malformed; names the file and why."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class MetricsFileError(MlgateError):
    """A metrics file cannot be read as JSON, YAML or TOML; names the file and why."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class FileLimitExceeded(MlgateError):
    """A repository file is over a parsing limit (size, nesting depth or nodes); says which.

    Callers re-raise it as their file's own error (`DvcFileError`, `MetricsFileError`), which
    adds the file's name.
    """


class MetricsNotInGit(MetricsFileError):
    """A metrics file kept in DVC's cache, not in git, that the reader cannot reach there."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        # Reads as one sentence: "metrics.yaml is in DVC's cache, not in git: …".
        self.args = (f"{path} {reason}",)


class RunnerError(MlgateError):
    """The local runner could not prepare a checkout or an environment for a command."""


class UnsafeCheckoutPath(RunnerError):
    """A repository name, PR number or sha would place a checkout outside the data directory."""


class FetchError(RunnerError):
    """git could not fetch or check out a commit; `stderr` is git's message, secrets redacted."""

    def __init__(self, command: str, returncode: int, stderr: str) -> None:
        self.command = command
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(
            f"`{command}` failed (exit {returncode}): {stderr.strip() or 'no message'}; check "
            "that the App is installed on the repository and that the commit was pushed"
        )


class RunEnvironmentError(RunnerError):
    """A run parameter cannot reach a command as an environment variable; names it and why."""


class SandboxUnavailable(RunnerError):
    """Repository code cannot run because the sandbox cannot be set up here; nothing ran.

    The message says why and how to fix it (install bubblewrap, or set `MLGATE_SANDBOX=none`).
    """


class LocalGitError(MlgateError):
    """A git command on a local checkout failed (`mlgate report`); says which and git's words."""


class NotAGitRepository(LocalGitError):
    """The directory is not inside a git repository (or git is not installed)."""


class UnknownRevision(LocalGitError):
    """A revision names no commit; `rev` is what the user gave, `complaint` what git said."""

    def __init__(self, rev: str, complaint: str) -> None:
        self.rev = rev
        self.complaint = complaint
        super().__init__(f"bad revision {rev!r}: no commit has that name ({complaint})")


class CiSetupError(MlgateError):
    """What the user of `mlgate ci` must fix: an option, the CI's environment or event, the
    checkout's history, or the token; the message names the fix."""


class UntrustedCode(MlgateError):
    """A PR's code would run, but neither its author nor a maintainer's /evaluate vouches for it."""


class SemaphoreError(MlgateError):
    """Semaphore answered a request with an error the client does not retry, or never answered."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        if status:
            super().__init__(f"Semaphore answered {status} to {method} {path}: {message}")
        else:
            super().__init__(f"Semaphore gave no answer to {method} {path}: {message}")


class SemaphoreUnauthorized(SemaphoreError):
    """401: SEMAPHORE_API_TOKEN is wrong, reset or revoked."""


class SemaphoreNotFound(SemaphoreError):
    """404: the id is unknown, or (usually) the service account is not a member of the project."""


class SemaphoreRefused(SemaphoreError):
    """409: Semaphore refused a promotion for now (e.g. too many pending); try again later."""


class SemaphoreRetriesExhausted(SemaphoreError):
    """Semaphore kept answering 5xx, or could not be reached, after the bounded retries."""


class SignInRefused(MlgateError):
    """The dashboard's GitHub sign-in failed (state mismatch, a refused code, GitHub down);
    the message says what happened and to sign in again."""
