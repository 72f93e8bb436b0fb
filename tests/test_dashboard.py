"""The dashboard over HTTP: signing in with the emulator's OAuth, who sees what, each page's
content, and what it refuses."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from bot import create_app, sample
from bot.emulator import GitHubEmulator
from bot.loopback import serve
from bot.settings import Settings
from bot.state import audit, baselines, dashboard_sessions, recent_evaluations, retrain_pulls
from tests.dashboard_site import (
    ACCURACY,
    INSTALLATION,
    NOT_HERS,
    NOT_INSTALLED,
    READ_ONLY,
    SHARED,
    USER,
    Site,
    dashboard_env,
    lay_out_repositories,
    seed_history,
    serve_dashboard,
    sign_in,
)
from tests.support import SECRET, Bot, pull_request_event

SVG = "{http://www.w3.org/2000/svg}"
NOT_CONFIGURED = (
    "dashboard not configured: set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (the App's OAuth "
    "client) to serve it\n"
)
COOKIE = "mlgate_session"


@pytest.fixture
def site(
    github_env: dict[str, str], emulator: GitHubEmulator, redis_conn: redis.Redis
) -> Iterator[Site]:
    lay_out_repositories(emulator)
    with serve_dashboard(github_env, emulator, redis_conn) as served:
        yield served


def repository_links(page: str) -> list[str]:
    return re.findall(r'<a href="/repos/([^"]+)">', page)


def section(page: str, anchor: str) -> str:
    """The part of a repository page under `<h2 id=anchor>`, up to the next heading."""
    return page.split(f'<h2 id="{anchor}">', 1)[1].split("<h2 ", 1)[0]


def charts(html: str) -> list[ET.Element]:
    return [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", html, re.S)]


def polyline_points(chart: ET.Element) -> list[tuple[float, float]]:
    line = chart.find(f"{SVG}polyline")
    assert line is not None
    return [(float(x), float(y)) for x, y in (p.split(",") for p in line.attrib["points"].split())]


def rows(html: str) -> list[list[str]]:
    """Table body rows as lists of cell texts, tags stripped."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    found = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        found.append([" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells])
    return found


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize("given", [(), ("GITHUB_CLIENT_ID",), ("GITHUB_CLIENT_SECRET",)])
def test_without_the_oauth_client_every_dashboard_route_answers_404_not_configured(
    github_env: dict[str, str],
    emulator: GitHubEmulator,
    redis_conn: redis.Redis,
    given: tuple[str, ...],
) -> None:
    full = dashboard_env(github_env, emulator)
    env = github_env | {name: full[name] for name in given}
    with serve(create_app(env)) as url:
        for method, path in (
            ("GET", "/"),
            ("GET", "/login"),
            ("GET", "/auth/callback?code=abc&state=def"),
            ("GET", f"/repos/{SHARED}"),
            ("POST", "/logout"),
        ):
            answer = requests.request(method, url + path, allow_redirects=False, timeout=5)
            assert (answer.status_code, answer.text) == (404, NOT_CONFIGURED), (method, path)
        assert requests.get(url + "/healthz", timeout=5).status_code == 200


def test_the_session_secret_is_derived_from_the_webhook_secret_unless_set() -> None:
    base = {"GITHUB_WEBHOOK_SECRET": "first,second", "REDIS_URL": "redis://127.0.0.1:1/0"}
    derived = Settings.from_env(base).session_secret
    assert derived not in ("first", "second") and len(derived) == 64
    assert Settings.from_env(base).session_secret == derived  # every process derives the same
    rotated = Settings.from_env(base | {"GITHUB_WEBHOOK_SECRET": "second,first"})
    assert rotated.session_secret != derived
    chosen = Settings.from_env(base | {"MLGATE_SESSION_SECRET": "s3cret-of-the-cookie"})
    assert chosen.session_secret == "s3cret-of-the-cookie"


@pytest.mark.parametrize(
    ("api", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),  # the emulator serves both
    ],
)
def test_github_pages_are_found_beside_the_api(api: str, web: str) -> None:
    env = {"GITHUB_WEBHOOK_SECRET": "s", "REDIS_URL": "redis://x", "GITHUB_API_URL": api}
    assert Settings.from_env(env).github_web_url == web


# -- signing in -------------------------------------------------------------------------------


def test_sign_in_sends_the_browser_to_github_with_a_new_state_and_the_callback(
    site: Site,
) -> None:
    states = []
    for _ in range(2):
        answer = requests.get(f"{site.url}/login", allow_redirects=False, timeout=5)
        assert answer.status_code == 302
        location = urlsplit(answer.headers["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == (
            f"{site.emulator.url}/login/oauth/authorize"
        )
        query = {k: v[0] for k, v in parse_qs(location.query).items()}
        assert query["client_id"] == site.emulator.github_app.client_id
        assert query["redirect_uri"] == f"{site.url}/auth/callback"
        assert site.emulator.github_app.client_secret not in answer.headers["Location"]
        assert len(query["state"]) >= 40
        states.append(query["state"])
        cookie = answer.headers["Set-Cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # MLGATE_PUBLIC_URL is not https here
    assert states[0] != states[1]


def test_with_an_https_public_url_the_cookie_is_secure_and_github_returns_there(
    github_env: dict[str, str], emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    env = dashboard_env(github_env, emulator) | {"MLGATE_PUBLIC_URL": "https://mlgate.example.com/"}
    client = create_app(env).test_client()
    answer = client.get("/login")
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["redirect_uri"] == ["https://mlgate.example.com/auth/callback"]
    cookie = answer.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_signed_in_user_sees_only_repositories_both_the_app_and_they_can_read(
    site: Site,
) -> None:
    browser = sign_in(site)
    page = browser.get(f"{site.url}/", timeout=5).text
    assert "signed in as <strong>@alice</strong>" in page
    assert repository_links(page) == [SHARED, READ_ONLY]
    assert NOT_HERS not in page and NOT_INSTALLED not in page
    assert [row[:2] for row in rows(page)] == [[SHARED, "write"], [READ_ONLY, "read"]]


def test_someone_with_no_shared_repository_is_told_so(site: Site) -> None:
    page = sign_in(site, "mallory").get(f"{site.url}/", timeout=5).text
    assert "signed in as <strong>@mallory</strong>" in page
    assert repository_links(page) == []
    assert "No repository that both you and mlgate can read" in page


def test_the_user_token_stays_on_the_server(site: Site) -> None:
    browser = sign_in(site)
    cookie = browser.cookies[COOKIE]
    session_id = read_cookie(site, cookie)["sid"]
    signed_in = dashboard_sessions.find(site.conn, session_id)
    assert signed_in is not None and signed_in.login == USER
    assert signed_in.token.startswith("ghu_")
    assert set(read_cookie(site, cookie)) == {"sid", "_permanent"}
    page = browser.get(f"{site.url}/repos/{SHARED}", timeout=5).text
    assert signed_in.token not in page and signed_in.token not in cookie


def read_cookie(site: Site, cookie: str) -> dict[str, str]:
    serializer = SecureCookieSessionInterface().get_signing_serializer(site_app(site))
    assert serializer is not None
    found = serializer.loads(cookie)
    assert isinstance(found, dict)
    return found


def site_app(site: Site) -> Flask:
    """An app with the served one's settings, hence its cookie key."""
    env = {"GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": "redis://127.0.0.1:1/0"}
    return create_app(dashboard_env(env, site.emulator))


def test_a_cookie_signed_with_another_key_signs_nobody_in(site: Site) -> None:
    browser = sign_in(site)
    session_id = read_cookie(site, browser.cookies[COOKIE])["sid"]
    app = site_app(site)
    genuine = SecureCookieSessionInterface().get_signing_serializer(app)
    app.secret_key = "not-the-key"
    forged = SecureCookieSessionInterface().get_signing_serializer(app)
    assert genuine is not None and forged is not None
    cookies = [
        (forged.dumps({"sid": session_id}), False),
        (genuine.dumps({"sid": session_id}), True),
    ]
    for value, signed_in in cookies:
        other = requests.Session()
        other.cookies.set(COOKIE, str(value))
        page = other.get(f"{site.url}/", timeout=5).text
        assert ("@alice" in page) is signed_in
        assert ("Sign in with GitHub" in page) is not signed_in


def test_a_callback_with_another_browsers_state_is_refused_and_signs_nobody_in(
    site: Site,
) -> None:
    victim = requests.Session()
    victim.get(f"{site.url}/login", allow_redirects=False, timeout=5)  # the victim's own state
    attacker = requests.Session()
    started = attacker.get(f"{site.url}/login", allow_redirects=False, timeout=5)
    site.emulator.sign_in("mallory")
    back = attacker.get(started.headers["Location"], allow_redirects=False, timeout=5)
    callback = back.headers["Location"]
    assert callback.startswith(f"{site.url}/auth/callback?")

    refused = victim.get(callback, allow_redirects=False, timeout=5)
    assert refused.status_code == 400
    assert "does not match the one this browser was given" in refused.text
    assert "Sign in with GitHub" in victim.get(f"{site.url}/", timeout=5).text
    # Refused before the exchange: the code is still good for the browser it was made for.
    assert "@mallory" in attacker.get(callback, timeout=5).text
    # ...and a state is good once: the same link again is refused.
    again = attacker.get(callback, allow_redirects=False, timeout=5)
    assert again.status_code == 400


@pytest.mark.parametrize("state", [None, "", "altered"])
def test_a_callback_without_this_browsers_state_is_refused_before_the_code_is_spent(
    site: Site, state: str | None
) -> None:
    browser = requests.Session()
    started = browser.get(f"{site.url}/login", allow_redirects=False, timeout=5)
    site.emulator.sign_in(USER)
    back = requests.get(started.headers["Location"], allow_redirects=False, timeout=5)
    query = {k: v[0] for k, v in parse_qs(urlsplit(back.headers["Location"]).query).items()}
    given = {"code": query["code"]}
    if state is not None:
        given["state"] = query["state"] + "x" if state == "altered" else state
    answer = browser.get(
        f"{site.url}/auth/callback", params=given, allow_redirects=False, timeout=5
    )
    assert answer.status_code == 400
    assert "does not match the one this browser was given" in answer.text
    assert not [r for r in site.emulator.requests if r.path == "/login/oauth/access_token"]


def test_a_code_github_does_not_know_is_refused_with_githubs_reason(site: Site) -> None:
    browser = requests.Session()
    started = browser.get(f"{site.url}/login", allow_redirects=False, timeout=5)
    state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    answer = browser.get(
        f"{site.url}/auth/callback?code=0123456789abcdef0123&state={state}",
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 400
    assert "The code passed is incorrect or expired." in answer.text


def test_a_denied_authorization_says_what_github_said(site: Site) -> None:
    browser = requests.Session()
    browser.get(f"{site.url}/login", allow_redirects=False, timeout=5)
    answer = browser.get(
        f"{site.url}/auth/callback?error=access_denied"
        "&error_description=The+user+has+denied+your+application+access.&state=x",
        timeout=5,
    )
    assert answer.status_code == 400
    assert "GitHub said: The user has denied your application access." in answer.text


def test_a_repository_page_signs_in_first_and_comes_back(site: Site) -> None:
    site.emulator.sign_in(USER)
    browser = requests.Session()
    landed = browser.get(f"{site.url}/repos/{SHARED}", timeout=10)
    assert (landed.status_code, landed.url) == (200, f"{site.url}/repos/{SHARED}")
    assert f"<h1>{SHARED}</h1>" in landed.text


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_sign_in_never_returns_to_another_site(site: Site, target: str) -> None:
    site.emulator.sign_in(USER)
    landed = requests.Session().get(f"{site.url}/login", params={"next": target}, timeout=10)
    assert landed.url == f"{site.url}/"


def test_signing_out_ends_the_session_on_the_server(site: Site) -> None:
    browser = sign_in(site)
    cookie = browser.cookies[COOKIE]
    out = browser.post(f"{site.url}/logout", timeout=5)
    assert "Sign in with GitHub" in out.text
    replayed = requests.Session()
    replayed.cookies.set(COOKIE, cookie)  # the cookie as it was before signing out
    page = replayed.get(f"{site.url}/", timeout=5).text
    assert "Sign in with GitHub" in page and "@alice" not in page


def test_a_token_github_no_longer_takes_asks_to_sign_in_again(site: Site) -> None:
    browser = sign_in(site)
    session_id = read_cookie(site, browser.cookies[COOKIE])["sid"]
    dashboard_sessions.forget_repositories(site.conn, USER)
    site.emulator.inject_fault(
        "GET", r"^/user/installations$", 401, body={"message": "Bad credentials"}
    )
    answer = browser.get(f"{site.url}/repos/{SHARED}", allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"/login?next=/repos/{SHARED}"
    assert dashboard_sessions.find(site.conn, session_id) is None


def test_github_failing_is_a_502_that_says_so(site: Site) -> None:
    browser = sign_in(site)
    dashboard_sessions.forget_repositories(site.conn, USER)
    site.emulator.inject_fault("GET", r"^/user/installations$", 502, times=2)
    answer = browser.get(f"{site.url}/", timeout=5)
    assert answer.status_code == 502
    assert "GitHub did not answer" in answer.text and "GET /user/installations" in answer.text


def test_the_repositories_are_asked_of_github_once_a_minute_per_user(site: Site) -> None:
    browser = sign_in(site)
    for path in ("/", f"/repos/{SHARED}", f"/repos/{READ_ONLY}", "/"):
        assert browser.get(f"{site.url}{path}", timeout=5).status_code == 200
    asked = [r for r in site.emulator.requests if r.path == "/user/installations"]
    assert len(asked) == 1
    # A lost access shows once the cache is gone (REPOSITORIES_TTL), here at once.
    site.emulator.set_permission(READ_ONLY, USER, "none")
    dashboard_sessions.forget_repositories(site.conn, USER)
    assert browser.get(f"{site.url}/repos/{READ_ONLY}", timeout=5).status_code == 404


def test_the_allowlist_hides_repositories_mlgate_does_not_act_on(
    github_env: dict[str, str], emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    lay_out_repositories(emulator)
    env = github_env | {"MLGATE_REPO_ALLOWLIST": f"octo/*,!{READ_ONLY}"}
    with serve_dashboard(env, emulator, redis_conn) as served:
        browser = sign_in(served)
        assert repository_links(browser.get(f"{served.url}/", timeout=5).text) == [SHARED]
        assert browser.get(f"{served.url}/repos/{READ_ONLY}", timeout=5).status_code == 404


# -- the repository page ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [NOT_HERS, NOT_INSTALLED, "nobody/nothing", SHARED.replace("octo", "otco")]
)
def test_a_repository_the_user_may_not_read_is_refused_with_the_same_404(
    site: Site, name: str
) -> None:
    seed_history(site.conn, NOT_HERS)
    browser = sign_in(site)
    answer = browser.get(f"{site.url}/repos/{name}", timeout=5)
    assert answer.status_code == 404
    assert f"{name} is not a repository that both you (@alice) and mlgate can read" in answer.text
    assert "<svg" not in answer.text and "Retrain on new data" not in answer.text


def test_the_repository_page_shows_evaluations_history_retrain_prs_monitoring_and_audit(
    site: Site,
) -> None:
    seed_history(site.conn)
    page = sign_in(site).get(f"{site.url}/repos/{SHARED}", timeout=5).text

    evaluations = rows(section(page, "evaluations"))
    assert [(r[0], r[2], r[3]) for r in evaluations] == [
        ("#34", "passed", "3 of 3 hold"),
        ("#33", "neutral", "none"),
        ("#32", "overridden", "2 of 3 hold"),
        ("#32", "failed", "2 of 3 hold"),
        ("#31", "passed", "3 of 3 hold"),
    ]

    history = charts(section(page, "history"))
    assert [c.attrib["data-metric"] for c in history] == ["accuracy", "loss"]  # not "model"
    accuracy = polyline_points(history[0])
    assert len(accuracy) == len(ACCURACY)
    # The best commit is the last and highest; the worst the first and lowest.
    assert min(accuracy, key=lambda p: p[1]) == accuracy[-1]
    assert max(accuracy, key=lambda p: p[1]) == accuracy[0]

    [retrain] = rows(section(page, "retrain"))
    assert retrain[0] == "#35" and retrain[1].startswith("Retrain on new data (")
    assert retrain[2].startswith("mlgate/retrain-")

    monitoring = section(page, "monitoring")
    assert "production:" in monitoring and "breached" in monitoring and "#36" in monitoring
    [live] = charts(monitoring)
    assert live.attrib["data-metric"] == "accuracy" and len(polyline_points(live)) == 6
    assert rows(monitoring)[0][2] == "accuracy 0.828"  # the newest upload first

    assert [(r[1], r[2], r[3]) for r in rows(section(page, "audit"))] == [
        ("retrain", "@alice", "#34"),
        ("override", "@alice", "#32"),
        ("approve-evaluate", "@bob", "#33"),
    ]


def test_a_repository_without_history_says_so(site: Site) -> None:
    page = sign_in(site).get(f"{site.url}/repos/{READ_ONLY}", timeout=5).text
    assert "No evaluation published yet." in page
    assert "No default-branch metrics recorded yet." in page
    assert "No open retrain pull request." in page
    assert "No live metrics uploaded" in page
    assert "Nothing audited yet." in page
    assert "<svg" not in page


def test_text_from_a_repository_is_escaped(site: Site) -> None:
    evil = '<script>alert("x")</script>'
    baselines.record_baseline(site.conn, SHARED, "a" * 40, {"m.json": {evil: 1.0}}, 1.0)
    baselines.record_baseline(site.conn, SHARED, "b" * 40, {"m.json": {evil: 2.0}}, 2.0)
    audit.record(site.conn, SHARED, audit.Entry("override", "alice", 1, "a" * 40, evil))
    retrain_pulls.record_open(
        site.conn,
        SHARED,
        retrain_pulls.RetrainPull(2, "<img src=x onerror=alert(1)>", evil, "b" * 40, 1.0),
    )
    answer = sign_in(site).get(f"{site.url}/repos/{SHARED}", timeout=5)
    page = answer.text
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x" in page
    [chart] = charts(section(page, "history"))
    assert chart.attrib["data-metric"] == evil  # escaped in the page, the same text when read
    assert "script-src" not in answer.headers["Content-Security-Policy"]
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_a_published_evaluation_is_listed_with_its_verdict(
    bot: Bot, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    repo = "octo/model"
    emulator.add_installation(INSTALLATION, "octo")
    emulator.create_repo(
        repo,
        installation_id=INSTALLATION,
        files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS),
    )
    emulator.set_permission(repo, USER, "write")
    changed = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS)
    names = ("data/images.dvc", "dvc.lock", "data/features.csv", "metrics.json")
    emulator.repo(repo).commit("feature", {n: changed[n] for n in names}, "new data", author=USER)
    number = int(
        emulator.open_pull_request(repo, head="feature", base="main", user=USER, title="t")[
            "number"
        ]
    )
    assert bot.deliver("pull_request", pull_request_event(emulator, repo, number, "opened")) == 202
    head = emulator.pull_request(repo, number)["head"]["sha"]
    [listed] = recent_evaluations.recent(redis_conn, repo)
    assert (listed.pr, listed.sha, listed.verdict) == (number, head, "passed")
    assert listed.gates > 0 and listed.failed_gates == 0
