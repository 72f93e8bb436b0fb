"""The parts of bot/ and what each may import (ARCHITECTURE.md), checked on the source with ast."""

from __future__ import annotations

import ast
import functools
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
PARTS = ("core", "state", "web", "handlers", "runs", "github", "semaphore", "emulator")
# Libraries that do I/O: a core module importing one is no longer pure.
IO_LIBRARIES = {
    "prometheus_client",
    "redis",
    "requests",
    "flask",
    "werkzeug",
    "rq",
    "gunicorn",
    "jwt",
    "subprocess",
    "socket",
    "http",
    "urllib.request",
    "shutil",
    "tempfile",
    "threading",
    "multiprocessing",
}
# What each part may import of the others (ARCHITECTURE.md, "The parts"); bot.errors,
# bot.logs and bot.settings are shared by all but core, which gets only bot.errors.
ALLOWED = {
    "core": {"core"},
    "state": {"core", "state"},
    "web": {"core", "state", "web"},
    "github": {"core", "state", "github"},
    "semaphore": {"core", "state", "semaphore"},
    "runs": {"core", "state", "runs", "github", "semaphore"},
    # Only the package (`bot/handlers/__init__.py`, the router) imports the handlers: checked
    # below, one handler module never imports another.
    "handlers": {"core", "state", "runs", "github", "semaphore", "handlers"},
    "emulator": {"emulator"},
}


@functools.cache
def _modules() -> tuple[tuple[str, Path], ...]:
    found = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found.append((dotted.removesuffix(".__init__"), path))
    return tuple(found)


def modules() -> Iterator[tuple[str, Path]]:
    yield from _modules()


def imports(path: Path) -> list[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            # `from bot.state import audit` imports the module bot.state.audit
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def part(module: str) -> str | None:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[0] == "bot" and pieces[1] in PARTS else None


def known(module: str) -> bool:
    return module in {name for name, _ in _modules()}


def violations(sources: list[tuple[str, Path]] | None = None) -> list[str]:
    found = []
    for module, path in sources if sources is not None else list(modules()):
        mine = part(module)
        for target in imports(path):
            top = target.split(".")[0]
            if mine == "core" and any(
                target == io or target.startswith(io + ".") for io in IO_LIBRARIES
            ):
                found.append(f"{module} (core) imports {target}, which does I/O")
            if mine == "core" and top == "bot" and target not in ("bot", "bot.errors"):
                if part(target) != "core" and known(target):
                    found.append(f"{module} (core) imports {target}")
            if mine == "state" and top in {"requests", "flask", "werkzeug", "jwt"}:
                found.append(f"{module} (state) imports {target}")
            theirs = part(target)
            if mine is None or theirs is None or not known(target):
                continue
            if theirs not in ALLOWED[mine]:
                found.append(f"{module} ({mine}) imports {target} ({theirs})")
            if mine == "handlers" and theirs == "handlers" and module != "bot.handlers":
                found.append(f"handler {module} imports handler {target}")
    return found


def test_every_part_imports_only_what_it_may() -> None:
    assert violations() == []


def test_only_state_names_a_redis_key() -> None:
    offenders = []
    for module, path in modules():
        if part(module) == "state":
            continue
        tree = ast.parse(path.read_text())
        # GitHub labels (`mlgate:retrain`) share the prefix; they are named *_LABEL.
        labels = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id.endswith("LABEL") for t in node.targets)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "bot.state.redis_conn":
                if any(alias.name in ("key", "KEY_PREFIX") for alias in node.names):
                    offenders.append(module)
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if (
                    node.value.startswith("mlgate:")
                    and " " not in node.value
                    and id(node) not in labels
                ):
                    offenders.append(f"{module}: {node.value!r}")
    assert offenders == []


def test_module_names_do_not_repeat() -> None:
    names = Counter(path.stem for _, path in modules() if path.stem != "__init__")
    assert [name for name, count in names.items() if count > 1] == []


def test_bot_never_imports_workers_but_from_its_entry_points() -> None:
    # `mlgate worker` and `mlgate demo` start workers: the command line is their entry point.
    entry_points = {"bot.cli", "bot.demo"}
    offenders = [
        module
        for module, path in modules()
        if module not in entry_points and any(t.split(".")[0] == "workers" for t in imports(path))
    ]
    assert offenders == []


def test_no_import_cycles_between_modules() -> None:
    graph = {
        module: {t for t in imports(path) if known(t) and t != module and t.startswith("bot.")}
        for module, path in modules()
    }
    # A package's __init__ re-exporting its modules is not a cycle of behaviour.
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert cycles == []


def test_comments_cite_no_file_outside_the_repository() -> None:
    for folder in ("bot", "workers", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            # Comments cite ARCHITECTURE.md or the README, files the repository has.
            assert "DESIGN" + ".md" not in path.read_text(), path


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component))
    return result


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("bot.core.x", "import redis\n", "bot.core.x (core) imports redis, which does I/O"),
        (
            "bot.core.x",
            "def f():\n    from bot.state import audit\n",
            "bot.core.x (core) imports bot.state.audit",
        ),
        (
            "bot.handlers.x",
            "from bot.handlers.push import router\n",
            "handler bot.handlers.x imports handler bot.handlers.push",
        ),
        (
            "bot.web.x",
            "from bot.runs import deploy\n",
            "bot.web.x (web) imports bot.runs.deploy (runs)",
        ),
    ],
)
def test_the_guard_catches_a_forbidden_import(
    tmp_path: Path, module: str, source: str, expected: str
) -> None:
    path = tmp_path / "x.py"
    path.write_text(source)
    assert expected in violations([(module, path)])


def test_architecture_names_every_module_once() -> None:
    rows = re.findall(r"^\| `((?:bot|workers)/[\w/]+\.py)` \|", ARCHITECTURE.read_text(), re.M)
    on_disk = {
        str(path.relative_to(ROOT))
        for folder in ("bot", "workers")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "__init__.py"
    }
    assert sorted(rows) == sorted(set(rows)), "a module is listed twice"
    assert sorted(on_disk - set(rows)) == [], "modules missing from ARCHITECTURE.md"
    assert sorted(set(rows) - on_disk) == [], "ARCHITECTURE.md lists modules that do not exist"
