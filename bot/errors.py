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
