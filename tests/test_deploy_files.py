"""deploy/: every file parsed and checked against the code, the CLI and the README."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import redis
import yaml

from bot import create_app
from bot.cli import main
from bot.embedded_redis import find_redis_server
from bot.emulator import GitHubEmulator
from bot.github.github_client import GitHubApp
from bot.settings import DEFAULT_SHUTDOWN_GRACE, Settings, unescape_pem
from bot.state.redis_conn import connect

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
README = ROOT / "README.md"
# Names the deploy files use that mlgate itself does not read, and who reads them.
DEPLOY_ONLY = {
    "REDIS_PASSWORD": "docker compose and Kubernetes, to start Redis and build REDIS_URL",
    "REDISCLI_AUTH": "redis-cli in the Redis health checks",
    "PYTHONUNBUFFERED": "Python, so that logs reach the container runtime at once",
}
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
PASSWORD = "pw0123456789abcdef"


# --- what the code reads, and what the README documents --------------------------------------


def _env_reads(path: Path) -> set[str]:
    """Names read from an environment mapping: `env.get("X")`, `os.environ["X"]`, `getenv`."""

    def is_env(node: ast.expr) -> bool:
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
        return "env" in str(name).lower()

    def constant(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value if ENV_NAME.fullmatch(node.value) else None
        return None

    names: list[str | None] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method == "getenv" or (
                method in ("get", "setdefault", "pop") and is_env(node.func.value)
            ):
                names.append(constant(node.args[0]))
        elif isinstance(node, ast.Subscript) and is_env(node.value):
            names.append(constant(node.slice))
    return {name for name in names if name}


def code_variables() -> set[str]:
    files = [*(ROOT / "bot").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]
    return set().union(*(_env_reads(path) for path in files))


def settings_variables() -> set[str]:
    return _env_reads(ROOT / "bot" / "settings.py")


def docs() -> list[Path]:
    """README.md and docs/: the operator's documentation may move between them."""
    return [README, *sorted((ROOT / "docs").rglob("*.md"))]


def docs_text() -> str:
    return "\n".join(doc.read_text() for doc in docs())


def readme_variables() -> set[str]:
    """The names in the configuration table (`| variable | meaning |`), wherever it lives."""
    names: set[str] = set()
    for doc in docs():
        in_table = False
        for line in doc.read_text().splitlines():
            if re.fullmatch(r"\|\s*variable\s*\|\s*meaning\s*\|", line.strip()):
                in_table = True
            elif in_table and line.startswith("|"):
                names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
            else:
                in_table = False
    assert names, "no `| variable | meaning |` table in README.md or docs/"
    return names


def documented(names: set[str], where: str) -> None:
    unknown = names - readme_variables() - set(DEPLOY_ONLY)
    assert not unknown, f"{where} sets {sorted(unknown)}: not in the README's configuration table"


def readme_image() -> str:
    builds = re.findall(r"docker build -f deploy/Dockerfile (.*?)-t (\S+) \.", docs_text())
    assert builds, "README shows no `docker build -f deploy/Dockerfile ... -t NAME .`"
    assert len({name for _, name in builds}) == 1, builds
    return cast(str, builds[0][1])


def same_image(a: str, b: str) -> bool:
    def tagged(name: str) -> str:
        return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

    return tagged(a) == tagged(b)


def cli_command(argv: list[str], where: str) -> str:
    """The `mlgate` subcommand argv runs, after click accepted its options."""
    assert argv[0].endswith("mlgate"), f"{where}: {argv} does not run mlgate"
    name, *args = argv[1:]
    command = main.commands.get(name)
    assert command is not None, f"{where}: `mlgate {name}` is no command"
    command.make_context(name, list(args))  # raises on an unknown option or a bad value
    return name


def procfile_commands() -> set[str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {cli_command(line.split(":", 1)[1].split(), "Procfile") for line in lines if line}


def routes() -> dict[str, set[str]]:
    app = create_app({"GITHUB_WEBHOOK_SECRET": "s", "REDIS_URL": "redis://127.0.0.1:1/0"})
    return {rule.rule: set(rule.methods or ()) for rule in app.url_map.iter_rules()}


def test_readme_documents_every_setting_and_only_variables_the_code_reads() -> None:
    settings = settings_variables()
    # The scan must see what it judges: these are read in bot/settings.py.
    assert {"GITHUB_WEBHOOK_SECRET", "REDIS_URL", "MLGATE_DATA_DIR"} <= settings
    assert settings - readme_variables() == set()
    assert readme_variables() - code_variables() == set()
    assert {"PORT", "WEB_CONCURRENCY", "WEB_THREADS"} <= code_variables()  # gunicorn_conf.py


# --- deploy/.env.example and the escaped private key --------------------------------------------


def env_example() -> dict[str, str]:
    """Every NAME=value of the example, set or commented out; quotes as systemd reads them."""
    assignments: dict[str, str] = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        match = re.fullmatch(r"(?:# )?([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            value = match[2]
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]  # single quotes: literal, in systemd and docker compose
            assignments[match[1]] = value
    return assignments


def test_env_example_names_every_documented_variable_and_nothing_else() -> None:
    names = set(env_example())
    assert readme_variables() - names == set()
    documented(names, "deploy/.env.example")


def test_env_example_key_is_single_quoted_for_systemd() -> None:
    # Unquoted, systemd's EnvironmentFile turns `\n` into `n`; in single quotes it is kept.
    [line] = [
        line
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line.startswith("GITHUB_PRIVATE_KEY=")
    ]
    assert re.fullmatch(r"GITHUB_PRIVATE_KEY='-----BEGIN [^']*\\n-----END [^']*-----\\n'", line)
    pem = unescape_pem(env_example()["GITHUB_PRIVATE_KEY"])
    assert pem.splitlines()[0] == "-----BEGIN RSA PRIVATE KEY-----"
    assert pem.endswith("-----END RSA PRIVATE KEY-----\n")


def _escaped(pem: str) -> str:
    """What `awk 'NF {printf "%s\\n", $0}' app.pem` prints: one line, `\\n` for each break."""
    return "".join(f"{line}\\n" for line in pem.splitlines() if line.strip())


def test_a_one_line_escaped_pem_signs_in_to_github(
    emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    emulator.add_installation(7, "octo")
    emulator.create_repo("octo/models", installation_id=7, files={"README.md": "#\n"})
    escaped = _escaped(emulator.app_private_key_pem)
    assert "\n" not in escaped
    env = {"GITHUB_WEBHOOK_SECRET": "s", "REDIS_URL": "redis://x", "GITHUB_APP_ID": "1"}
    settings = Settings.from_env(env | {"GITHUB_PRIVATE_KEY": escaped})
    assert settings.github_private_key.strip() == emulator.app_private_key_pem.strip()
    app = GitHubApp(settings.github_app_id, settings.github_private_key, emulator.url, redis_conn)
    assert app.installation_for_repo("octo/models") == 7  # the emulator checked the JWT


@pytest.mark.parametrize(
    "key",
    [
        "-----BEGIN RSA PRIVATE KEY-----\nAB\\nCD\n-----END RSA PRIVATE KEY-----\n",
        "not a key at all",
    ],
)
def test_a_pem_with_real_line_breaks_or_no_escapes_is_left_as_given(key: str) -> None:
    assert unescape_pem(key) == key


def test_the_escaped_key_is_redacted_from_logs_as_given() -> None:
    from bot import logs

    escaped = "-----BEGIN RSA PRIVATE KEY-----\\nredact-me-escaped\\n-----END RSA PRIVATE KEY-----"
    Settings.from_env(
        {"GITHUB_WEBHOOK_SECRET": "s", "REDIS_URL": "r", "GITHUB_PRIVATE_KEY": escaped}
    )
    assert "redact-me-escaped" not in logs.redact(f"oops: {escaped}")
    assert "redact-me-escaped" not in logs.redact(f"oops: {unescape_pem(escaped)}")


def test_settings_files_with_keys_are_git_ignored_and_the_template_is_not() -> None:
    def ignored(path: str) -> bool:
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        return result.returncode == 0

    assert ignored("deploy/.env") and ignored(".env") and ignored("deploy/app.pem")
    assert not ignored("deploy/.env.example")


# --- the image: deploy/Dockerfile and .dockerignore ---------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            instructions.append((word.upper(), " ".join(rest.split())))
            pending = ""
    return instructions


def docker_args(name: str) -> list[str]:
    return [args for word, args in dockerfile() if word == name]


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in docker_args("ENV"):
        env |= dict(item.split("=", 1) for item in shlex.split(args))
    return env


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: `*` within a name, `**` across folders."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) per line, in order: the last pattern that matches decides."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            cleaned = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
            rules.append((not negated, _pattern(cleaned)))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether docker build sends `path` (relative to the repository root)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    sent = True
    for excludes, pattern in rules:
        # A pattern that matches a folder matches everything in it.
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            sent = not excludes
    return sent


def build_context() -> Iterator[tuple[str, int]]:
    rules = dockerignore()
    for folder, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(folder, ROOT)
        prefix = "" if rel == "." else rel + "/"
        # Skip walking folders nothing re-includes (.venv, .git): they are the bulk.
        dirs[:] = [d for d in dirs if in_context(prefix + d, rules) or d in ("bot", "workers")]
        for name in files:
            if in_context(prefix + name, rules):
                yield prefix + name, (Path(folder) / name).stat().st_size


def test_build_context_is_what_the_image_installs_and_no_secret_or_venv() -> None:
    rules = dockerignore()
    tracked = subprocess.run(
        ["git", "ls-files", "bot", "workers", "pyproject.toml", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tracked and all(in_context(path, rules) for path in tracked)
    for path in [
        ".venv/bin/python",
        ".git/HEAD",
        "bot/core/__pycache__/config.cpython-311.pyc",
        "deploy/.env",
        ".env",
        "app.pem",
        "tests/test_cli.py",
        ".mypy_cache/3.11/bot.json",
        ".mlgate/checkouts/x",
    ]:
        assert not in_context(path, rules), path
    sent = {path for path, _ in build_context()}
    assert not any(path.startswith((".venv/", ".git/", "tests/")) for path in sent)


def test_dockerfile_copies_only_what_the_context_sends_and_installs_git_and_bubblewrap() -> None:
    rules = dockerignore()
    for args in docker_args("COPY"):
        *sources, _ = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert in_context(source, rules), f"COPY {source}: .dockerignore leaves it out"
    [apt] = [args for args in docker_args("RUN") if "apt-get install" in args]
    assert {"git", "bubblewrap"} <= set(apt.split())
    [base] = docker_args("FROM")
    python = re.fullmatch(r"python:(\d+)\.(\d+)-slim", base)
    assert python, base
    with (ROOT / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    needed = re.fullmatch(r">=(\d+)\.(\d+)", project["requires-python"])
    assert needed and (int(python[1]), int(python[2])) >= (int(needed[1]), int(needed[2]))


def test_the_ml_layer_is_the_ml_extra_with_dvc_built_by_the_readmes_build_arg() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert any(re.match(r"dvc\b", requirement) for requirement in extras["ml"])
    [arg] = docker_args("ARG")
    name, _, default = arg.partition("=")
    assert default == ""  # without the build arg, no ML layer
    [layer] = [args for args in docker_args("RUN") if f"${name}" in args]
    assert f'pip install --no-cache-dir ".[${name}]"' in layer
    assert f"docker build -f deploy/Dockerfile --build-arg {name}=ml -t" in docs_text()


def test_image_runs_as_a_numeric_user_with_a_writable_data_dir_and_serves_on_port() -> None:
    env = docker_env()
    [user] = docker_args("USER")
    assert user.isdigit()  # Kubernetes' runAsNonRoot cannot check a user name
    [setup] = [args for args in docker_args("RUN") if "useradd" in args]
    assert f"--uid {user}" in setup
    assert f"install -d -o {user} -g {user} {env['MLGATE_DATA_DIR']}" in setup
    assert docker_args("EXPOSE") == [env["PORT"]]
    assert env["WEB_CONCURRENCY"] == "2"
    documented(set(env), "deploy/Dockerfile")
    [cmd] = docker_args("CMD")
    assert cli_command(json.loads(cmd), "Dockerfile CMD") == "serve"


# --- docker compose -----------------------------------------------------------------------------


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """docker compose's `${NAME}`, `${NAME:-default}`, `${NAME:?error}` and `$$`."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, operator, rest = match[1], match[2], match[3]
        if name in values and values[name] != "":
            return values[name]
        assert operator != ":?", f"compose would stop: {rest}"
        return rest if operator == ":-" else ""

    return re.sub(r"\$\$|\$\{([A-Z_][A-Z0-9_]*)(?:(:[-?])([^}]*))?\}", one, text)


def compose(values: Mapping[str, str] | None = None) -> dict[str, Any]:
    text = (DEPLOY / "docker-compose.yml").read_text()
    values = env_example() if values is None else values
    return cast(dict[str, Any], yaml.safe_load(interpolate(text, values)))


def mlgate_services() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    return {n: s for n, s in services.items() if same_image(s.get("image", ""), readme_image())}


def test_compose_builds_the_readmes_image_from_the_root_with_deploy_env() -> None:
    services = mlgate_services()
    assert set(services) == {"web", "worker", "scheduler"}
    for name, service in services.items():
        context = (DEPLOY / service["build"]["context"]).resolve()
        assert context == ROOT, name
        assert (context / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        assert (DEPLOY / service["env_file"]).resolve() == DEPLOY / ".env"
        assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}
        documented(set(service["environment"]), f"docker-compose.yml {name}")
    commands = {cli_command(s["command"], f"compose {n}") for n, s in services.items()}
    assert commands == procfile_commands() == {"serve", "worker", "scheduler"}


def test_compose_refuses_to_start_without_a_redis_password() -> None:
    with pytest.raises(AssertionError, match="set REDIS_PASSWORD in deploy/.env"):
        compose({})


def test_compose_web_is_sized_explicitly_and_health_checked_on_readyz() -> None:
    web = mlgate_services()["web"]
    assert web["environment"]["WEB_CONCURRENCY"] == "2"
    port = docker_env()["PORT"]
    assert web["ports"] == [f"{port}:{port}"]
    check = " ".join(web["healthcheck"]["test"])
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
    assert url and url[1] == port and "GET" in routes()[url[2]] and url[2] == "/readyz"


def test_compose_worker_keeps_its_data_dir_and_may_start_the_sandbox() -> None:
    worker = mlgate_services()["worker"]
    [volume] = worker["volumes"]
    assert volume.split(":")[1] == docker_env()["MLGATE_DATA_DIR"]
    assert volume.split(":")[0] in compose()["volumes"]
    assert set(worker["security_opt"]) == {
        "seccomp=unconfined",
        "apparmor=unconfined",
        "systempaths=unconfined",
    }
    seconds = int(worker["stop_grace_period"].removesuffix("s"))
    assert seconds == int(systemd_unit("worker")["TimeoutStopSec"][0])
    assert seconds == kubernetes_deployment("mlgate-worker")["terminationGracePeriodSeconds"]
    # Longer than the job's own grace, so that its check and lock are handled before the kill.
    grace = float(env_example().get("MLGATE_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE))
    assert grace == DEFAULT_SHUTDOWN_GRACE
    assert seconds > grace


# --- Kubernetes ---------------------------------------------------------------------------------


def kubernetes() -> list[dict[str, Any]]:
    with (DEPLOY / "kubernetes" / "mlgate.yaml").open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def kubernetes_deployment(name: str) -> dict[str, Any]:
    [pod] = [
        doc["spec"]["template"]["spec"]
        for doc in kubernetes()
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == name
    ]
    return cast(dict[str, Any], pod)


def kubernetes_secret_keys() -> set[str]:
    """The keys of the `mlgate` secret, as the file's own `kubectl create secret` makes it."""
    header = (DEPLOY / "kubernetes" / "mlgate.yaml").read_text().split("\napiVersion")[0]
    assert "kubectl create secret generic mlgate" in header
    return set(re.findall(r"--from-(?:literal|file)=([A-Z][A-Z0-9_]*)=", header))


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(NAME)` in args and env values: replaced when defined, else kept."""
    return re.sub(r"\$\(([A-Z_][A-Z0-9_]*)\)", lambda m: env.get(m[1], m[0]), text)


def mlgate_containers() -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]["containers"][0]
        for doc in kubernetes()
        if doc["kind"] == "Deployment" and doc["metadata"]["name"].startswith("mlgate-")
    }


def test_kubernetes_runs_the_image_the_readme_builds_with_a_data_dir_on_a_volume() -> None:
    containers = mlgate_containers()
    assert set(containers) == {"mlgate-web", "mlgate-worker", "mlgate-scheduler"}
    keys = kubernetes_secret_keys()
    assert {
        "GITHUB_APP_ID",
        "GITHUB_PRIVATE_KEY",
        "GITHUB_WEBHOOK_SECRET",
        "REDIS_PASSWORD",
    } <= keys
    documented(keys, "the `mlgate` secret")
    commands = set()
    for name, container in containers.items():
        assert same_image(container["image"], readme_image()), name
        assert container["imagePullPolicy"] == "IfNotPresent"  # a built image, not a pulled one
        commands.add(cli_command(container["args"], name))
        assert container["envFrom"] == [{"secretRef": {"name": "mlgate"}}]
        env = {item["name"]: item["value"] for item in container["env"]}
        documented(set(env), name)
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert env["MLGATE_DATA_DIR"] in mounts, name
        assert kubernetes_deployment(name)["securityContext"]["runAsNonRoot"] is True
    assert commands == procfile_commands()


def test_kubernetes_web_is_sized_to_its_cpu_limit_and_probed_on_real_routes() -> None:
    web = mlgate_containers()["mlgate-web"]
    env = {item["name"]: item["value"] for item in web["env"]}
    assert env["WEB_CONCURRENCY"] == web["resources"]["limits"]["cpu"] == "2"
    port = int(docker_env()["PORT"])
    assert web["ports"] == [{"containerPort": port}]
    app_routes = routes()
    for probe in ("livenessProbe", "readinessProbe"):
        get = web[probe]["httpGet"]
        assert get["port"] == port and "GET" in app_routes[get["path"]]
    [service] = [
        d for d in kubernetes() if d["kind"] == "Service" and d["metadata"]["name"] == "mlgate"
    ]
    assert service["spec"]["ports"][0]["targetPort"] == port
    assert service["spec"]["selector"] == {"app": "mlgate", "role": "web"}


def test_kubernetes_worker_may_start_the_sandbox() -> None:
    pod = kubernetes_deployment("mlgate-worker")
    assert pod["hostUsers"] is False
    assert pod["containers"][0]["securityContext"] == {
        "seccompProfile": {"type": "Unconfined"},
        "appArmorProfile": {"type": "Unconfined"},
        "procMount": "Unmasked",
    }


# --- Redis with a password, run for real ----------------------------------------------------------


@dataclass
class RedisDeployment:
    """How a deploy file starts Redis, checks its health and points mlgate at it."""

    server_args: list[str]
    probe: str  # a shell command
    probe_env: dict[str, str]
    mlgate_url: str


def compose_redis() -> RedisDeployment:
    config = compose({"REDIS_PASSWORD": PASSWORD})
    redis_service = config["services"]["redis"]
    command = redis_service["command"]
    assert command[0] == "redis-server"
    kind, probe = redis_service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    urls = {s["environment"]["REDIS_URL"] for s in config["services"].values() if "build" in s}
    [url] = urls
    return RedisDeployment(command[1:], probe, redis_service["environment"], url)


def kubernetes_redis() -> RedisDeployment:
    secret = {"REDIS_PASSWORD": PASSWORD}
    container = kubernetes_deployment("redis")["containers"][0]
    env = {}
    for item in container["env"]:
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "mlgate" and ref["key"] in kubernetes_secret_keys()
        env[item["name"]] = secret[ref["key"]]
    args = [expand(arg, env) for arg in container["args"]]
    shell, flag, probe = container["readinessProbe"]["exec"]["command"]
    assert (shell, flag) == ("sh", "-c")
    urls = set()
    for mlgate in mlgate_containers().values():
        values = {item["name"]: item["value"] for item in mlgate["env"]}
        urls.add(expand(values["REDIS_URL"], secret))  # REDIS_PASSWORD comes from envFrom
    [url] = urls
    return RedisDeployment(args, probe, env, url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["docker-compose.yml", "kubernetes/mlgate.yaml"])
def deployment(request: pytest.FixtureRequest) -> RedisDeployment:
    return compose_redis() if request.param == "docker-compose.yml" else kubernetes_redis()


def test_redis_of_the_deploy_files_requires_the_password_mlgate_is_given(
    deployment: RedisDeployment, tmp_path: Path
) -> None:
    server = find_redis_server()
    cli = shutil.which("redis-cli") or str(Path(server).with_name("redis-cli"))
    port = free_port()
    url = urlsplit(deployment.mlgate_url)
    assert (url.hostname, url.port, url.password) == ("redis", 6379, PASSWORD)
    argv = [server, *deployment.server_args]
    argv += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    local = deployment.mlgate_url.replace("@redis:6379/", f"@127.0.0.1:{port}/")
    try:
        conn = connect(local)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert conn.ping() is True  # mlgate, with the URL the file gives it
                break
            except redis.AuthenticationError:
                raise
            except redis.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, argv
                time.sleep(0.05)
        conn.close()
        anonymous = redis.Redis(host="127.0.0.1", port=port)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()

        def probe(env: Mapping[str, str]) -> int:
            command = deployment.probe.replace("redis-cli", f"{shlex.quote(cli)} -p {port}", 1)
            result = subprocess.run(["sh", "-c", command], env=dict(env), timeout=30, check=False)
            return result.returncode

        assert probe(deployment.probe_env | {"PATH": os.environ["PATH"]}) == 0
        wrong = deployment.probe_env | {"REDISCLI_AUTH": "wrong", "PATH": os.environ["PATH"]}
        assert probe(wrong) != 0
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- systemd ------------------------------------------------------------------------------------


def systemd_unit(name: str) -> dict[str, list[str]]:
    """The [Service] settings of deploy/systemd/mlgate-NAME.service, every value of each key."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in (DEPLOY / "systemd" / f"mlgate-{name}.service").read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_units_run_the_cli_in_a_writable_state_directory() -> None:
    readme = docs_text()
    commands = set()
    for name in ("web", "worker", "scheduler"):
        unit = systemd_unit(name)
        commands.add(cli_command(shlex.split(unit["ExecStart"][0]), f"mlgate-{name}.service"))
        env = dict(item.split("=", 1) for item in unit.get("Environment", []))
        [state] = unit["StateDirectory"]
        assert unit["WorkingDirectory"] == [f"/var/lib/{state}"] == [env["MLGATE_DATA_DIR"]]
        assert unit["ProtectSystem"] == ["strict"]  # why the data dir must be StateDirectory
        documented(set(env), f"mlgate-{name}.service")
        [env_file] = unit["EnvironmentFile"]
        assert env_file in readme  # where the README's install steps put the settings
        assert unit["ExecStart"][0].split()[0].removesuffix("/bin/mlgate") in readme
        assert f"mlgate-{name}" in readme
    assert commands == procfile_commands()
    web = dict(item.split("=", 1) for item in systemd_unit("web")["Environment"])
    assert web["WEB_CONCURRENCY"] == "2"


# --- the GitHub App manifest --------------------------------------------------------------------

# README "Registering the GitHub App" wording -> the manifest's permission names and levels.
PERMISSIONS = {
    "Checks": "checks",
    "Pull requests": "pull_requests",
    "Issues": "issues",
    "Contents": "contents",
    "Metadata": "metadata",
    "Deployments": "deployments",
}


def registering_section() -> str:
    text = docs_text()
    start = text.index("# Registering the GitHub App")
    end = text.find("\n#", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_manifest_asks_for_what_the_readme_lists_and_not_members() -> None:
    manifest = json.loads((DEPLOY / "github-app-manifest.json").read_text())
    section = " ".join(registering_section().split())
    listed = re.search(r"\*\*Repository permissions\*\*: (.*?)\. The manifest", section)
    assert listed, section
    readme: dict[str, str] = {}
    for item in re.split(r", ", listed[1]):
        words = re.fullmatch(r"(.+?) (read & write|read-only)", item.strip())
        assert words, item
        readme[PERMISSIONS[words[1]]] = "write" if words[2] == "read & write" else "read"
    assert manifest["default_permissions"] == readme
    assert "members" not in manifest["default_permissions"]
    assert "`deploy.approvers` names teams, add the organization permission **Members" in section
    events = re.search(r"\*\*Events\*\*: (.*?)\. GitHub always", section)
    assert events
    names = [e.strip().replace(" ", "_") for e in events[1].split(",")]
    assert manifest["default_events"] == names


def test_manifest_webhook_is_the_apps_github_route() -> None:
    manifest = json.loads((DEPLOY / "github-app-manifest.json").read_text())
    path = urlsplit(manifest["hook_attributes"]["url"]).path
    assert "POST" in routes()[path]
    assert f"https://<your host>{path}" in registering_section()


def test_build_context_stays_small() -> None:
    # The .venv alone is about 200 MB; the sources are well under 2 MB.
    size = sum(size for _, size in build_context())
    assert size < 5_000_000, f"the build context is {size:,} bytes"
