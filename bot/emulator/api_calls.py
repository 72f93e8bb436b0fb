"""What the GitHub emulator's handlers take and answer: calls, replies, errors, pagination."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request

from bot.emulator.github_models import JSON, EmulatedApp, EmulatedRepo, Token, UserToken

DOCS = "https://docs.github.com/rest"
# Pagination: "per_page ... default 30, max 100".
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


class ApiError(Exception):
    """An answer other than success, GitHub-shaped."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[JSON] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}


def validation_failed(resource: str, field: str, message: str, code: str = "invalid") -> ApiError:
    """GitHub's 422 "Validation Failed" with one error about `field`."""
    return ApiError(
        422,
        "Validation Failed",
        errors=[{"resource": resource, "field": field, "code": code, "message": message}],
    )


def custom_failure(resource: str, message: str) -> ApiError:
    """GitHub's 422 "Validation Failed" whose one error is a sentence, not a field."""
    return ApiError(
        422,
        "Validation Failed",
        errors=[{"resource": resource, "code": "custom", "message": message}],
    )


@dataclass
class Reply:
    """What a handler answers."""

    status: int
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json; charset=utf-8"


@dataclass
class Caller:
    """Who is asking, as the Authorization header says."""

    kind: str  # "jwt", "installation", "user", "none", "invalid"
    token: Token | None = None
    jwt_error: str | None = None
    app: EmulatedApp | None = None  # the App a JWT authenticates
    user: UserToken | None = None  # a user access token's owner


@dataclass
class Call:
    """One routed request."""

    request: Request
    params: dict[str, Any]
    body: Any
    caller: Caller
    repo: EmulatedRepo | None


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    operation: str
    resource: str
    needs: str  # "jwt", "installation", "user" (a user access token) or "none"
    permission: tuple[tuple[str, ...], str] | None  # (any of these permissions, level)


def reason_phrase(status: int) -> str:
    """The HTTP reason phrase of `status`."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_body(status: int, message: str, docs: str = DOCS) -> JSON:
    """GitHub's error object."""
    return {"message": message, "documentation_url": docs, "status": str(status)}


def required_repo(repo: EmulatedRepo | None) -> EmulatedRepo:
    """The routed repository (404 for a route that has none)."""
    if repo is None:
        raise ApiError(404, "Not Found")
    return repo


def page_size(value: str | None) -> int:
    """`per_page` as GitHub reads it: default 30, at most 100."""
    try:
        number = int(value) if value is not None else DEFAULT_PER_PAGE
    except ValueError:
        number = DEFAULT_PER_PAGE
    return min(MAX_PER_PAGE, max(1, number))


def json_object(body: Any) -> JSON:
    """The request body as an object ({} when empty)."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(422, "Invalid request.\n\nThe request body must be a JSON object.")
    return body


def string_field(body: JSON, name: str, resource: str, *, required: bool = False) -> str:
    """A string field of the body ("" when absent and optional)."""
    value = body.get(name)
    if value is None:
        if required:
            raise validation_failed(resource, name, f"{name} wasn't supplied.", "missing_field")
        return ""
    if not isinstance(value, str):
        raise validation_failed(resource, name, f"{name} is not a string.")
    return value


def paginate(request: Request, items: list[Any], base_url: str) -> tuple[list[Any], dict[str, str]]:
    """One page of `items` and GitHub's Link header (prev, next, last, first)."""
    per_page = page_size(request.args.get("per_page"))
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    last = max(1, math.ceil(len(items) / per_page))
    chunk = items[(page - 1) * per_page : page * per_page]

    def link(number: int) -> str:
        query = dict(request.args.items())
        query["page"] = str(number)
        return f"<{base_url}{request.path}?{urlencode(query)}>"

    rels = []
    if page > 1:
        rels.append(f'{link(min(page - 1, last))}; rel="prev"')
    if page < last:
        rels.append(f'{link(page + 1)}; rel="next"')
        rels.append(f'{link(last)}; rel="last"')
    if page > 1:
        rels.append(f'{link(1)}; rel="first"')
    return chunk, ({"Link": ", ".join(rels)} if rels else {})
