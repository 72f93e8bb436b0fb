"""The `mlgate` command: serve, worker, scheduler, dev, replay and friends."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bot.errors import MlgateError, SettingsError

# Every other import is inside the command that needs it: `mlgate --help` and `mlgate
# report` start in tens of milliseconds, and requests, redis, rq, Flask and YAML cost
# hundreds (tests/test_cli_imports.py holds the line; bench/README.md has the figures).
if TYPE_CHECKING:
    import redis

    from bot.settings import Settings

DEFAULT_PORT = "8000"
# Used by `mlgate dev` when no secret is configured, so `mlgate replay` works out of the box.
DEV_WEBHOOK_SECRET = "mlgate-dev-secret"
# Inside the package, so that an installed mlgate (a wheel, a container) serves the same way.
GUNICORN_CONF = "python:bot.gunicorn_conf"


def _settings(env: Mapping[str, str] | None = None) -> Settings:
    from bot.settings import Settings

    try:
        return Settings.from_env(env)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.version_option(package_name="mlgate", prog_name="mlgate", message="%(prog)s %(version)s")
def main() -> None:
    """mlgate: CI/CD for machine-learning repositories, as a GitHub App."""


def _load_env_file() -> None:
    """`mlgate register` writes `.env`; serve, worker, scheduler and dev read it (or the file
    MLGATE_ENV_FILE names), under the real environment, which wins."""
    from bot.app_registration import load_env_file

    try:
        load_env_file(Path(os.environ.get("MLGATE_ENV_FILE", ".env")))
    except MlgateError as exc:
        raise click.ClickException(str(exc)) from exc


def _share_metrics(settings: Settings) -> None:
    """Web, workers and scheduler on one machine write their Prometheus figures to one
    directory, which GET /metrics sums (PROMETHEUS_MULTIPROC_DIR, if set, wins)."""
    from bot import telemetry

    telemetry.use_directory(settings.data_dir / "prometheus")


@main.command()
@click.option("--bind", help="Address to listen on (default 0.0.0.0:$PORT, PORT default 8000).")
def serve(bind: str | None) -> None:
    """Run the web app under gunicorn."""
    _load_env_file()
    settings = _settings()  # refuse to start, with the variable to set, before gunicorn forks
    _share_metrics(settings)
    bind = bind or f"0.0.0.0:{os.environ.get('PORT', DEFAULT_PORT)}"
    argv = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONF, "--bind", bind]
    argv.append("bot:create_app()")
    os.execv(sys.executable, argv)


@main.command()
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option("--runs", default=1, show_default=True, help="Worker processes on the `runs` queue.")
@click.option(
    "--metrics-port",
    type=int,
    default=0,
    show_default=True,
    help="Serve this machine's Prometheus figures on this port (0: off). Where web and "
    "workers share no disk (separate containers or pods), scrape each.",
)
def worker(burst: bool, runs: int, metrics_port: int) -> None:
    """Run rq workers: one on `events`, --runs on `runs`."""
    from bot import logs
    from workers import worker as worker_module

    logs.configure()
    _load_env_file()
    settings = _settings()
    _share_metrics(settings)
    if metrics_port:
        from bot import telemetry

        telemetry.serve(metrics_port)
    sys.exit(
        worker_module.run(
            settings.redis_url, burst=burst, runs=runs, shutdown_grace=settings.shutdown_grace
        )
    )


@main.command()
def scheduler() -> None:
    """Run the periodic jobs: redeliver failed GitHub deliveries, recover interrupted jobs."""
    from bot import logs
    from workers import scheduler as scheduler_module

    logs.configure()
    _load_env_file()
    settings = _settings()
    _share_metrics(settings)
    scheduler_module.run(settings.redis_url)


@main.command()
def redeliver() -> None:
    """One sweep: ask GitHub to redeliver recent deliveries that never succeeded."""
    from bot import logs
    from bot.github import redelivery
    from bot.runs.context import Context
    from bot.state.redis_conn import connect

    logs.configure()
    settings = _settings()
    ctx = Context(settings=settings, redis=connect(settings.redis_url))
    try:
        ids = redelivery.sweep(ctx.github.app_client(), ctx.redis)
    except MlgateError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"redelivered {len(ids)} deliveries" + (f": {ids}" if ids else ""))


@main.command()
def demo() -> None:
    """The whole flow on a sample ML repo against the built-in GitHub emulator; no credentials."""
    from bot import demo as demo_module

    try:
        code = demo_module.run(click.echo)
    except MlgateError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


@main.group()
def config() -> None:
    """Repository configuration (.github/mlgate.yml)."""


@config.command("validate")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def config_validate(file: Path | None) -> None:
    """Check FILE (default: .github/mlgate.yml under the current directory) as mlgate would.

    Every problem names file:line, the key and what was expected. A repository without
    .github/mlgate.yml gets the defaults, so its absence is not an error; a FILE named
    explicitly must exist (a typo in CI must not pass).
    """
    from bot.core.config import CONFIG_PATH, validate_file

    if file is None:
        file = Path(CONFIG_PATH)
        if not file.exists() and not file.is_symlink():
            # As the bot: a repository without the file gets the defaults (no gates).
            click.echo(f"{file}: no file: the defaults apply — OK")
            return
    elif not file.exists() and not file.is_symlink():
        raise click.ClickException(f"{file}: no such file")
    problems = validate_file(file)
    for problem in problems:
        click.echo(problem)
    if problems:
        sys.exit(1)
    click.echo(f"{file}: valid")


class _ReportUsageError(click.ClickException):
    """What the user of `mlgate report` must fix: a revision, the directory, the config."""

    exit_code = 2


@main.command()
@click.option("--base", required=True, help="Revision to compare with, as a PR's base: main.")
@click.option("--head", default="HEAD", show_default=True, help="Revision to evaluate.")
@click.option("--md", "output", flag_value="md", default=True, help="Markdown (the default).")
@click.option("--json", "output", flag_value="json", help="`dvc metrics diff --json` output.")
@click.option("--full", is_flag=True, help="With --json: add gates, data and parameter changes.")
@click.option("--all", "all_metrics", is_flag=True, help="With --json: unchanged metrics too.")
@click.option(
    "--repo",
    default=".",
    show_default=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A directory of the git checkout.",
)
def report(base: str, head: str, output: str, full: bool, all_metrics: bool, repo: Path) -> None:
    """The bot's comparison of HEAD with BASE, from the local git history.

    Reads committed files only: uncommitted changes are not read (commit them first). The
    changed paths are `git diff BASE...HEAD`, as on a pull request; the configuration is
    .github/mlgate.yml at BASE (defaults when absent), as the bot reads it from the default
    branch. Committed metrics files are compared; nothing is run. Metrics are found as DVC
    finds them at each revision (every dvc.yaml and .dvc file, `${...}` templates, folders);
    those DVC keeps in its cache are read from the local cache (.dvc/cache).

    \b
    --md (default)  the Markdown comment the bot would post
    --json          exactly what `dvc metrics diff BASE HEAD --json` prints
                    (with --all: what it prints with --all):
                    {path: {metric: {"old": v, "new": v, "diff": new - old}}}
    --json --full   {"base": sha, "head": sha,
                     "verdict": "passed|failed|no_gates|skipped",
                     "metrics": <the --json object>,
                     "gates": [{"metric", "file", "passed", "reason",
                                "within_noise", "old", "new"}],
                     "data": [{"path", "change": "added|removed|modified",
                               "old"/"new": {"hash", "size", "nfiles"} or null}],
                     "params": [{"file", "key", "old", "new"}]}

    A metrics file or dvc.yaml that does not load counts as missing, as in DVC: its values
    are null, and stderr names the revisions and says why. In a repository with no commit
    yet, --json prints {} as DVC does.

    \b
    Exit status: 0; 1 when a quality gate fails; 2 for a usage error (bad
    revision, not a git repository, invalid configuration).
    """
    from bot.core.report import render_comment, report_json, report_verdict
    from bot.errors import LocalGitError, RepoConfigError, UnknownRevision
    from bot.runs.local_git import GitRepo, compare_local

    if output != "json" and (full or all_metrics):
        raise click.UsageError("--full and --all apply to --json only")
    try:
        with GitRepo.open(repo) as git:
            try:
                local = compare_local(git, base, head)
            except UnknownRevision:
                # Asked only now, as no revision resolves there: one git process less on
                # every other run.
                if output == "json" and not full and not git.has_commits():
                    # `dvc metrics diff` in a repository without commits
                    # (dvc/repo/metrics/diff.py).
                    click.echo("{}")
                    return
                raise
    except LocalGitError as exc:
        raise _ReportUsageError(str(exc)) from exc
    except RepoConfigError as exc:
        lines = "\n".join(exc.problems)
        raise _ReportUsageError(f"invalid configuration at {base}:\n{lines}") from exc
    evaluation = local.evaluation
    state = report_verdict(evaluation)
    if output == "md":
        click.echo(render_comment(evaluation))
    else:
        # As DVC's `ui.write_json`: indented on a terminal, one line when piped.
        indent = 2 if sys.stdout.isatty() else None
        data = report_json(evaluation, all=all_metrics, full=full)
        click.echo(json.dumps(data, indent=indent, default=str))
        for message in local.messages:
            click.echo(f"WARNING: {message}", err=True)
        if local.failed:
            # The shape of DVC's own line (dvc/commands/metrics.py), revisions as given.
            click.echo(
                "mlgate failed to load some metrics for following revisions: "
                f"'{', '.join(local.failed)}'.",
                err=True,
            )
    if state in ("failed", "error"):
        sys.exit(1)


class _CiSetupProblem(click.ClickException):
    """What the user of `mlgate ci` must fix first: an option, the environment, the checkout's
    history, the token."""

    exit_code = 2


@main.command()
@click.option(
    "--repo",
    "repo_name",
    metavar="OWNER/NAME",
    help="The repository of the PR (default: GITHUB_REPOSITORY, or the event's).",
)
@click.option(
    "--pr",
    "number",
    type=click.IntRange(min=1),
    help="The PR's number; outside GitHub Actions, with --repo (default: the Actions event's).",
)
@click.option(
    "--base",
    help="Revision to compare with, looked up as given, then as origin/BASE "
    "(default: the PR's base commit).",
)
@click.option(
    "--head",
    help="The PR's head commit, which gets the check (default: the event's, else the PR's "
    "from the API). It must be in the checkout.",
)
@click.option(
    "--token",
    envvar="GITHUB_TOKEN",
    show_envvar=True,
    help="A GitHub token that may comment on PRs and create check runs (never printed).",
)
@click.option(
    "--api-url",
    envvar="GITHUB_API_URL",
    show_envvar=True,
    default="https://api.github.com",
    show_default=True,
    help="The GitHub API (GitHub Enterprise Server: https://HOST/api/v3).",
)
@click.option(
    "--checkout",
    default=".",
    show_default=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A directory of the git checkout holding both revisions.",
)
def ci(
    repo_name: str | None,
    number: int | None,
    base: str | None,
    head: str | None,
    token: str | None,
    api_url: str,
    checkout: Path,
) -> None:
    """The report and quality gate as a step of your CI: no App, no Redis, no server.

    Compares the PR's head with its base from the job's checkout, as `mlgate report` does
    (committed files; the configuration is .github/mlgate.yml at the base), then writes the
    bot's sticky comment (found again by its marker among the token user's own comments) and
    the `mlgate/quality` check run (a commit status where the token may not create check
    runs), and prints the report to the job log.

    \b
    GitHub Actions: the PR comes from the `pull_request` event (GITHUB_EVENT_PATH); the token
                    is the job's GITHUB_TOKEN. Check out with `fetch-depth: 0`.
    Any other CI:   mlgate ci --repo OWNER/NAME --pr N --base main (token: --token or
                    GITHUB_TOKEN).

    A PR from a fork gets a read-only token in GitHub Actions: the report then goes to the
    job log (and the job summary) only, and the exit status still says the verdict.

    \b
    Exit status: 0; 1 when a quality gate fails (or the evaluation does); 2 for a usage or
    setup error (an option, the event, a revision missing from the checkout, an invalid
    configuration, a token GitHub refuses).
    """
    from bot.errors import GitHubError, RepoConfigError
    from bot.runs.ci_step import CiOptions, run

    options = CiOptions(token, api_url, checkout, repo_name, number, base, head)
    try:
        code = run(options, os.environ, click.echo, lambda line: click.echo(line, err=True))
    except RepoConfigError as exc:
        lines = "\n".join(exc.problems)
        raise _CiSetupProblem(f"invalid configuration at the base:\n{lines}") from exc
    except GitHubError as exc:
        fix = " (the token is wrong or expired)" if exc.status == 401 else ""
        raise _CiSetupProblem(f"{exc}{fix}") from exc
    except MlgateError as exc:
        raise _CiSetupProblem(str(exc)) from exc
    sys.exit(code)


def _say_sandbox(mode: str, env: Mapping[str, str]) -> None:
    """Say at start whether PR code can run: without bubblewrap `mlgate dev` still serves
    (webhooks, committed metrics), but every run is refused with a neutral check naming
    the fix; MLGATE_SANDBOX=none, the only opt-out, is said and logged."""
    from bot.runs.sandbox import readiness

    notice = readiness(mode, env)
    if notice is not None:
        click.echo(f"mlgate dev: {notice}", err=True)


@main.command()
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, help="Port of the web app on 127.0.0.1."
)
@click.option(
    "--open-pr",
    is_flag=True,
    help="On the built-in emulator: open a PR on the sample repository and print its comment.",
)
def dev(port: str, open_pr: bool) -> None:
    """Web, worker and scheduler in one command, with an embedded Redis if REDIS_URL is unset
    and the built-in GitHub emulator if no App is configured. Ctrl-C stops everything."""
    from bot.dev_stack import DevStack

    _load_env_file()
    secret = os.environ.get("GITHUB_WEBHOOK_SECRET")
    if not secret:
        secret = DEV_WEBHOOK_SECRET
        click.echo(
            f"GITHUB_WEBHOOK_SECRET is not set; using {DEV_WEBHOOK_SECRET!r} for local development",
            err=True,
        )
    from bot.settings import sandbox_mode

    try:
        _say_sandbox(sandbox_mode(), os.environ)
        sys.exit(DevStack(port, click.echo).run(secret, open_pr))
    except MlgateError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option(
    "--public-url",
    required=True,
    help="Where GitHub reaches this mlgate, e.g. https://mlgate.example.com (webhooks go to "
    "/webhooks/github below it).",
)
@click.option("--org", help="Register the App in this organisation (default: your account).")
@click.option("--teams", is_flag=True, help="Ask for Members read: deploy.approvers names teams.")
@click.option(
    "--env-file",
    default=".env",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the App's settings (mode 0600; never overwritten).",
)
@click.option(
    "--github-url",
    default="https://github.com",
    show_default=True,
    help="GitHub's web address (GitHub Enterprise Server: yours).",
)
@click.option("--no-browser", is_flag=True, help="Print the page's address; open no browser.")
def register(
    public_url: str, org: str | None, teams: bool, env_file: Path, github_url: str, no_browser: bool
) -> None:
    """Create the GitHub App from its manifest and write its settings to .env."""
    import webbrowser

    from bot.app_registration import CODE_LIFETIME, Registration, RegistrationError
    from bot.loopback import serve as serve_wsgi

    api_url = os.environ.get("GITHUB_API_URL") or (
        "https://api.github.com"
        if github_url.rstrip("/") == "https://github.com"
        else f"{github_url.rstrip('/')}/api/v3"
    )
    registration = Registration(github_url, api_url, public_url, env_file, org=org, teams=teams)
    try:
        registration.check_paths()
    except RegistrationError as exc:
        raise click.ClickException(str(exc)) from exc
    with serve_wsgi(registration.app) as url:
        click.echo(f"Open {url}/ and press the button; GitHub sends you back here when done.")
        if not no_browser:
            webbrowser.open(f"{url}/")
        if not registration.done.wait(CODE_LIFETIME):
            raise click.ClickException("no answer from GitHub within an hour; nothing written")
    if registration.error is not None:
        raise click.ClickException(registration.error)
    click.echo(
        f"Wrote {registration.written} (mode 0600) and the App's private key beside it. "
        "`mlgate serve`, `worker` and `dev` read it."
    )


@main.command()
@click.argument("payload", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--event", required=True, help="The X-GitHub-Event, e.g. pull_request.")
@click.option(
    "--url",
    default=f"http://127.0.0.1:{DEFAULT_PORT}/webhooks/github",
    show_default=True,
    help="The server's webhook endpoint.",
)
@click.option(
    "--delivery", help="X-GitHub-Delivery (default: a new id, so it is never a duplicate)."
)
def replay(payload: Path, event: str, url: str, delivery: str | None) -> None:
    """Sign a saved payload with the configured secret and send it to a running server."""
    import uuid

    import requests

    from bot.core import signatures

    secrets = [s for s in os.environ.get("GITHUB_WEBHOOK_SECRET", "").split(",") if s.strip()]
    if not secrets:
        raise click.ClickException(
            "GITHUB_WEBHOOK_SECRET is not set: set it to the secret the server uses "
            f"(`mlgate dev` uses {DEV_WEBHOOK_SECRET!r} when none is set)"
        )
    body = payload.read_bytes()
    try:
        json.loads(body)
    except ValueError as exc:
        raise click.ClickException(f"{payload} is not JSON: {exc}") from exc
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "mlgate-replay",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signatures.sign(secrets[0].strip(), body),
    }
    try:
        response = requests.post(url, data=body, headers=headers, timeout=30)
    except requests.RequestException as exc:
        raise click.ClickException(f"could not reach {url}: {exc}") from exc
    click.echo(f"{response.status_code} {response.text.strip()}")
    if response.status_code >= 400:
        sys.exit(1)


@main.group()
def token() -> None:
    """Metrics upload tokens (POST /api/v1/metrics), one or more per repository.

    Tokens live in the Redis of REDIS_URL, as SHA-256 hashes only.
    """


@contextmanager
def _token_store() -> Iterator[redis.Redis]:
    """A client for REDIS_URL; a Redis failure becomes a one-line error."""
    import redis

    from bot.state.redis_conn import connect

    url = os.environ.get("REDIS_URL", "")
    if not url:
        raise click.ClickException(
            "REDIS_URL is not set: point it at the Redis the mlgate web app uses"
        )
    conn = connect(url)
    try:
        yield conn
    except redis.RedisError as exc:
        # Never the URL itself: it may carry a password.
        raise click.ClickException(
            f"cannot reach Redis at REDIS_URL: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        conn.close()


def _repo_argument(repo: str) -> str:
    from bot.state.upload_tokens import canonical_repo

    canonical = canonical_repo(repo)
    if canonical is None:
        raise click.BadParameter(f"{repo!r}: expected owner/name, such as octo-org/models")
    return canonical


@token.command("create")
@click.argument("repo")
def token_create(repo: str) -> None:
    """Create a token for REPO (owner/name) and print it; it is shown this once only."""
    from bot.state import upload_tokens

    name = _repo_argument(repo)
    with _token_store() as conn:
        created = upload_tokens.create(conn, name, time.time())
    token_id = upload_tokens.hash_token(created)[: upload_tokens.TOKEN_ID_LENGTH]
    click.echo(created)
    click.echo(
        f"Created a metrics upload token for {name} (id {token_id}). "
        "It is not stored and is shown only this once: keep it as the CI secret MLGATE_TOKEN.",
        err=True,
    )


@token.command("revoke")
@click.argument("repo")
@click.option("--id", "token_id", help="Revoke only this token (an id `mlgate token list` shows).")
def token_revoke(repo: str, token_id: str | None) -> None:
    """Revoke REPO's tokens (all of them unless --id): uploads with them get 401."""
    from bot.state import upload_tokens

    name = _repo_argument(repo)
    with _token_store() as conn:
        revoked = upload_tokens.revoke(conn, name, token_id)
    if not revoked:
        which = f"token {token_id}" if token_id else "metrics upload token"
        raise click.ClickException(f"{name} has no {which}")
    click.echo(f"revoked {revoked} token{'s' if revoked != 1 else ''} of {name}")


@token.command("list")
@click.argument("repo", required=False)
def token_list(repo: str | None) -> None:
    """List tokens by repository, id and creation time (never the tokens themselves)."""
    from bot.state import upload_tokens

    name = _repo_argument(repo) if repo is not None else None
    with _token_store() as conn:
        found = upload_tokens.list_tokens(conn, name)
    for info in found:
        created = datetime.fromtimestamp(info.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(f"{info.repo}\t{info.id}\tcreated {created}")


if __name__ == "__main__":
    main()
