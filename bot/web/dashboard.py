"""The dashboard at GET /: sign in with GitHub, then each repository's evaluations, metric
history, retrain PRs, monitoring and audit log, as server-rendered HTML and SVG."""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import redis
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from bot.core.monitoring import Observation
from bot.core.svg_charts import (
    MAX_CHARTS,
    Metrics,
    Series,
    format_number,
    line_chart,
    metric_series,
)
from bot.errors import GitHubError, SignInRefused
from bot.settings import Settings
from bot.state import (
    audit,
    baselines,
    dashboard_sessions,
    production_uploads,
    recent_evaluations,
    retrain_pulls,
)
from bot.state.dashboard_sessions import SignedIn, VisibleRepository
from bot.web.answers import answer
from bot.web.github_sign_in import GitHubSignIn
from bot.web.services import services

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__, template_folder="templates")

SESSION_COOKIE = "mlgate_session"
CALLBACK_PATH = "/auth/callback"
EVALUATIONS_SHOWN = 30
AUDIT_SHOWN = 50
UPLOADS_SHOWN = 30
# No script, no frame, no third-party anything: the pages are HTML with inline styles and SVG.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # The OAuth callback's URL holds a code: no other site may see it as a referrer.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def configure(app: Flask, settings: Settings) -> None:
    """The signed session cookie (Flask's, keyed by the session secret) and the blueprint."""
    app.config.update(
        SECRET_KEY=settings.session_secret,
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=dashboard_sessions.SESSION_TTL),
    )
    # Templates read as they are written: no blank lines where a block tag stood.
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.extensions["mlgate-sign-in"] = GitHubSignIn(settings)
    app.register_blueprint(bp)


def _sign_in() -> GitHubSignIn:
    found = current_app.extensions["mlgate-sign-in"]
    assert isinstance(found, GitHubSignIn)
    return found


@bp.before_request
def _only_when_configured() -> Response | None:
    if not services().settings.dashboard_enabled:
        return answer(
            404,
            "dashboard not configured: set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET "
            "(the App's OAuth client) to serve it",
            subject="dashboard",
        )
    return None


@bp.after_request
def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.app_template_filter("utc")
def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def _problem(
    status: int, title: str, text: str, *, sign_in: bool = False, user: SignedIn | None = None
) -> Response:
    log.warning("dashboard %s", title, extra={"status": status, "path": request.path})
    page = render_template(
        "dashboard/problem.html", title=title, text=text, sign_in=sign_in, user=user
    )
    return Response(page, status=status, mimetype="text/html")


def _callback_url() -> str:
    public = services().settings.public_url
    # Behind a proxy the request's host may be an internal one: the public URL is the one
    # registered as the App's callback URL.
    return public + CALLBACK_PATH if public else url_for("dashboard.callback", _external=True)


def _safe_next(target: str | None) -> str:
    """A path on this site to return to after signing in; anything else goes to `/`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _signed_in(conn: redis.Redis) -> SignedIn | None:
    session_id = session.get("sid")
    if not isinstance(session_id, str):
        return None
    found = dashboard_sessions.find(conn, session_id)
    if found is None:
        session.clear()  # ended or expired here: the cookie goes too
    return found


def _visible(conn: redis.Redis, user: SignedIn) -> list[VisibleRepository]:
    repositories = dashboard_sessions.cached_repositories(conn, user.login)
    if repositories is None:
        repositories = _sign_in().repositories(user.token)
        dashboard_sessions.remember_repositories(conn, user.login, repositories)
    return repositories


def _ask_again(conn: redis.Redis) -> BaseResponse:
    """GitHub no longer takes the user's token (revoked, expired): sign in again."""
    session_id = session.get("sid")
    if isinstance(session_id, str):
        dashboard_sessions.end(conn, session_id)
    session.clear()
    return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))


# -- signing in and out -----------------------------------------------------------------------


@bp.get("/login")
def login() -> BaseResponse:
    """Send the browser to GitHub with a new `state`, kept in this browser's signed cookie."""
    state = secrets.token_urlsafe(32)
    session["oauth_state"] = state
    session["next"] = _safe_next(request.args.get("next"))
    return redirect(_sign_in().authorize_url(state, _callback_url()))


@bp.get(CALLBACK_PATH)
def callback() -> BaseResponse:
    """GitHub's way back: the state must be the one this browser was given, the code must
    exchange for a token; then a new session (never the old one) is started."""
    expected = session.pop("oauth_state", None)
    back_to = _safe_next(session.pop("next", None))
    args = request.args
    if args.get("error"):
        reason = args.get("error_description") or args["error"]
        return _problem(400, "Sign-in did not happen", f"GitHub said: {reason}", sign_in=True)
    given = args.get("state", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, given):
        return _problem(
            400,
            "Sign-in refused",
            "The sign-in's state does not match the one this browser was given (an old or "
            "forged link, or cookies are blocked). Sign in again from this page.",
            sign_in=True,
        )
    code = args.get("code")
    if not code:
        return _problem(400, "Sign-in refused", "GitHub sent no code back.", sign_in=True)
    client = _sign_in()
    try:
        token = client.exchange(code, _callback_url())
        login_name = client.login(token)
    except SignInRefused as refused:
        return _problem(400, "Sign-in refused", str(refused), sign_in=True)
    except GitHubError as exc:
        return _problem(502, "GitHub did not answer", str(exc), sign_in=True)
    conn = services().redis
    try:
        dashboard_sessions.forget_repositories(conn, login_name)
        session_id = dashboard_sessions.start(conn, SignedIn(login_name, token, time.time()))
    except redis.RedisError as exc:
        return _problem(503, "Redis unavailable", f"{type(exc).__name__}; try again shortly")
    session.clear()
    session["sid"] = session_id
    session.permanent = True
    log.info("dashboard sign-in", extra={"user": login_name})
    return redirect(back_to)


@bp.post("/logout")
def logout() -> BaseResponse:
    session_id = session.get("sid")
    if isinstance(session_id, str):
        try:
            dashboard_sessions.end(services().redis, session_id)
        except redis.RedisError as exc:
            return _problem(503, "Redis unavailable", f"{type(exc).__name__}; try again shortly")
    session.clear()
    return redirect(url_for("dashboard.index"))


# -- pages ------------------------------------------------------------------------------------


@bp.get("/")
def index() -> BaseResponse:
    """Signed out: the sign-in button. Signed in: the repositories the user and mlgate share."""
    conn = services().redis
    try:
        user = _signed_in(conn)
        if user is None:
            return Response(render_template("dashboard/welcome.html", user=None))
        try:
            repositories = _visible(conn, user)
        except GitHubError as exc:
            if exc.status == 401:
                return _ask_again(conn)
            return _problem(502, "GitHub did not answer", str(exc))
        latest = recent_evaluations.latest(conn, [r.full_name for r in repositories])
    except redis.RedisError as exc:
        return _problem(503, "Redis unavailable", f"{type(exc).__name__}; try again shortly")
    page = render_template(
        "dashboard/repositories.html", user=user, repositories=repositories, latest=latest
    )
    return Response(page)


@dataclass(frozen=True)
class Chart:
    name: str
    svg: Markup


@dataclass(frozen=True)
class Environment:
    """One environment's live metrics as the dashboard shows them."""

    name: str
    issue: int | None
    uploads: list[Observation]
    charts: list[Chart]
    not_drawn: int


def charts(rows: Sequence[Metrics], labels: Sequence[str]) -> tuple[list[Chart], int]:
    """A chart per numeric metric of `rows` (at most MAX_CHARTS), and how many were left out."""
    series: list[Series] = metric_series(rows)
    drawn = [Chart(s.name, Markup(line_chart(s, labels))) for s in series[:MAX_CHARTS]]
    return drawn, len(series) - len(drawn)


@bp.get("/repos/<owner>/<name>")
def repository(owner: str, name: str) -> BaseResponse:
    """One repository, if the signed-in user and the App can both read it; 404 otherwise."""
    conn = services().redis
    try:
        user = _signed_in(conn)
        if user is None:
            return redirect(url_for("dashboard.login", next=request.path))
        try:
            repositories = _visible(conn, user)
        except GitHubError as exc:
            if exc.status == 401:
                return _ask_again(conn)
            return _problem(502, "GitHub did not answer", str(exc))
        wanted = f"{owner}/{name}".lower()
        repo = next((r for r in repositories if r.full_name.lower() == wanted), None)
        if repo is None:
            # The same answer whether it exists or not: the page reveals nothing about it.
            return _problem(
                404,
                "Not a repository you can see here",
                f"{owner}/{name} is not a repository that both you (@{user.login}) and mlgate "
                "can read. Ask an owner for access, or for mlgate to be installed on it.",
                user=user,
            )
        page = _repository_page(conn, user, repo)
    except redis.RedisError as exc:
        return _problem(503, "Redis unavailable", f"{type(exc).__name__}; try again shortly")
    return Response(page)


def _repository_page(conn: redis.Redis, user: SignedIn, repo: VisibleRepository) -> str:
    full_name = repo.full_name
    trend = baselines.trend(conn, full_name)
    trend_charts, trend_hidden = charts([b.metrics for b in trend], [b.sha[:7] for b in trend])
    environments = []
    for env in production_uploads.environments(conn, full_name):
        uploads = production_uploads.recent(conn, full_name, env, UPLOADS_SHOWN)
        labels = [time.strftime("%m-%d %H:%M", time.gmtime(u.at)) for u in uploads]
        env_charts, env_hidden = charts([u.metrics for u in uploads], labels)
        environments.append(
            Environment(
                env,
                production_uploads.open_issue(conn, full_name, env),
                list(reversed(uploads)),
                env_charts,
                env_hidden,
            )
        )
    return render_template(
        "dashboard/repository.html",
        user=user,
        repo=repo,
        github_url=services().settings.github_web_url,
        evaluations=recent_evaluations.recent(conn, full_name, EVALUATIONS_SHOWN),
        trend=trend,
        trend_charts=trend_charts,
        trend_hidden=trend_hidden,
        retrain=retrain_pulls.open_pulls(conn, full_name),
        environments=environments,
        audit=list(reversed(audit.entries(conn, full_name, AUDIT_SHOWN))),
        format_number=format_number,
    )
