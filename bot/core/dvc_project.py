"""A DVC project at one revision as `dvc metrics` sees it: DVC files, metrics files, their bytes."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.core.dvc import load_yaml
from bot.core.dvc_interpolation import resolve_list, resolve_stages, root_context
from bot.errors import DvcFileError, FileLimitExceeded, MetricsFileError, MetricsNotInGit

# Which files DVC collects and how it reads them follows DVC 3: `dvc/repo/index.py`
# (`collect_files`), `dvc/repo/metrics/show.py` (`_collect_metrics`, `try_expand_paths`),
# `dvc/fs/dvc.py` (`_open`: git first, then DVC's data) and `dvc/stage/loader.py`.

PROJECT_FILE = "dvc.yaml"
LOCK_FILE = "dvc.lock"
# Keys `dvc.yaml` may hold (`dvc/schema.py` MULTI_STAGE_SCHEMA); any other fails the file.
_TOP_KEYS = frozenset({"datasets", "plots", "stages", "vars", "params", "metrics", "artifacts"})
_STAGE_KEYS = frozenset(
    {
        "matrix",
        "cmd",
        "wdir",
        "deps",
        "params",
        "vars",
        "frozen",
        "meta",
        "desc",
        "always_changed",
        "outs",
        "metrics",
        "plots",
    }
)
# Keys a `.dvc` file and each of its outputs may hold (SINGLE_STAGE_SCHEMA, output.SCHEMA).
_SINGLE_STAGE_KEYS = frozenset(
    {"md5", "wdir", "deps", "outs", "locked", "frozen", "meta", "always_changed", "desc"}
)
_OUT_KEYS = frozenset(
    {
        *("md5", "checksum", "etag", "size", "nfiles", "isexec", "version_id", "path"),
        *("persist", "cloud", "hash", "desc", "type", "labels", "meta", "cache", "remote"),
        *("push", "files", "fs_config"),
    }
)
# Folders DVC never looks into (`DvcIgnoreFilter`'s defaults).
_SKIPPED_DIRS = frozenset({".git", ".hg", ".dvc"})
MISSING = "does not exist at this revision"
NOT_IN_GIT = "is in DVC's cache, not in git"
CACHE_ADVICE = "set `cache: false` for it, or use `source: run` / `semaphore`"


@dataclass(frozen=True)
class RevisionFiles:
    """What can be read at one revision.

    `read` gives a committed file's bytes (None when it is not a file there). `listing` is
    every committed file path; without it (None) only the root dvc.yaml is read and
    directories are not expanded. `cache` reads DVC's cache by object path under the cache
    directory (`files/md5/ab/cdef…`); without it, metrics kept in the cache are reported as
    such, never silently left out.
    """

    read: Callable[[str], bytes | None]
    listing: Sequence[str] | None = None
    cache: Callable[[str], bytes | None] | None = None


@dataclass(frozen=True)
class TrackedOutput:
    """An output a DVC file declares: its repository path, whether DVC caches it, its hash.

    `legacy` marks a DVC 2 hash (no `hash: md5` beside it), kept in the old cache layout.
    """

    path: str
    cache: bool = True
    md5: str | None = None
    legacy: bool = False

    @property
    def is_dir(self) -> bool:
        return self.md5 is not None and self.md5.endswith(".dir")


def object_path(md5: str, legacy: bool) -> str:
    """Where DVC keeps an object under its cache directory (DVC 3 `files/md5/`, DVC 2 flat)."""
    prefix = "" if legacy else "files/md5/"
    return f"{prefix}{md5[:2]}/{md5[2:]}"


@dataclass(frozen=True)
class MetricsLayout:
    """The metrics files a revision declares and every output its DVC files name.

    `failure` says why the revision's DVC files did not load; DVC then shows no metrics of
    that revision at all (every value null), and so does mlgate.
    """

    declared: tuple[str, ...] = ()
    outputs: Mapping[str, TrackedOutput] = field(default_factory=dict)
    dvc_files: tuple[str, ...] = ()
    failure: DvcFileError | None = None
    # Committed paths `.dvcignore` hides: never DVC files, never found in a folder.
    ignored: frozenset[str] = frozenset()


# ---------------------------------------------------------------------------- finding files


def _walk_key(path: str) -> list[tuple[int, str]]:
    # os.walk, top-down: a folder's files come before its subfolders.
    parts = path.split("/")
    return [(1, part) for part in parts[:-1]] + [(0, parts[-1])]


def _under(path: str, folder: str) -> bool:
    return folder in ("", ".") or path == folder or path.startswith(folder + "/")


def _subrepos(listing: Iterable[str]) -> set[str]:
    # A folder with its own `.dvc/` is another DVC repository: DVC leaves it out.
    found = set()
    for path in listing:
        parts = path.split("/")
        if ".dvc" in parts[1:-1]:
            found.add("/".join(parts[: parts.index(".dvc", 1)]))
    return found


def _glob(segment: str) -> str:
    """One path segment of a gitignore pattern as a regular expression."""
    out = []
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and index + 1 < len(segment):
            index += 1
            out.append(re.escape(segment[index]))
        elif char == "[" and "]" in segment[index + 2 :]:
            end = segment.index("]", index + 2)
            body = segment[index + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body}]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


@dataclass(frozen=True)
class _IgnoreRule:
    base: str  # the folder of the .dvcignore that holds it
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _ignore_rule(base: str, line: str) -> _IgnoreRule | None:
    """A `.dvcignore` line (gitignore syntax, as DVC reads it with pathspec)."""
    line = re.sub(r"(?<!\\)\s+$", "", line)
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    elif line.startswith(("\\#", "\\!")):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    # A slash before the end anchors the pattern to its folder; else it matches at any depth.
    segments = line.lstrip("/").split("/")
    if "/" not in line:
        segments = ["**", *segments]
    parts = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]+/)*")
        else:
            parts.append(_glob(segment) + ("" if last else "/"))
    return _IgnoreRule(base, re.compile("".join(parts)), negate, dir_only)


def ignored_paths(read: Callable[[str], bytes | None], listing: Sequence[str]) -> frozenset[str]:
    """Committed paths that `.dvcignore` files hide from DVC (a hidden folder hides all below).

    As in git, a file cannot be brought back by `!` once a folder above it is hidden.
    """
    rules: list[_IgnoreRule] = []
    for path in sorted(
        (p for p in listing if posixpath.basename(p) == ".dvcignore"), key=_walk_key
    ):
        content = read(path)
        if content is None:
            continue
        base = posixpath.dirname(path)
        for line in content.decode("utf-8", "replace").splitlines():
            rule = _ignore_rule(base, line)
            if rule is not None:
                rules.append(rule)
    if not rules:
        return frozenset()
    verdicts: dict[tuple[str, bool], bool] = {}

    def hidden(candidate: str, is_dir: bool) -> bool:
        key = (candidate, is_dir)
        if key not in verdicts:
            verdict = False
            for rule in rules:
                if rule.dir_only and not is_dir or not _under(candidate, rule.base):
                    continue
                relative = candidate[len(rule.base) + 1 :] if rule.base else candidate
                if relative and rule.regex.fullmatch(relative):
                    verdict = not rule.negate
            verdicts[key] = verdict
        return verdicts[key]

    found = set()
    for path in listing:
        parts = path.split("/")
        folders = ["/".join(parts[:n]) for n in range(1, len(parts))]
        if any(hidden(folder, True) for folder in folders) or hidden(path, False):
            found.add(path)
    return frozenset(found)


def dvc_files(listing: Sequence[str], ignored: frozenset[str] = frozenset()) -> list[str]:
    """The `dvc.yaml` and `*.dvc` files DVC would load, in the order it walks to them."""
    subrepos = _subrepos(listing)
    found = []
    for path in listing:
        if path in ignored:
            continue
        parts = path.split("/")
        if any(p in _SKIPPED_DIRS for p in parts[:-1]):
            continue
        if any(_under(path, repo) for repo in subrepos):
            continue
        name = parts[-1]
        if name == PROJECT_FILE or (name.endswith(".dvc") and name != ".dvc"):
            found.append(path)
    return sorted(found, key=_walk_key)


# ---------------------------------------------------------------------------- loading


def _join(folder: str, path: str) -> str:
    # DVC resolves paths under its filesystem's root "/", where `..` stops: a path that
    # climbs out of the repository lands back at its root ("../m.json" reads m.json).
    return posixpath.normpath("/" + posixpath.join(folder, path)).lstrip("/") or "."


def _load(content: bytes, path: str) -> Any:
    try:
        return load_yaml(content)
    except UnicodeDecodeError as exc:
        raise DvcFileError(path, f"not UTF-8 text ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        raise DvcFileError(path, f"invalid YAML: {' '.join(str(exc).split())}") from exc
    except FileLimitExceeded as exc:
        raise DvcFileError(path, str(exc)) from exc


def _digest(entry: Mapping[str, Any]) -> tuple[str | None, bool]:
    md5 = entry.get("md5")
    return (str(md5) if md5 is not None else None), entry.get("hash") != "md5"


def _extra_keys(data: Mapping[Any, Any], allowed: frozenset[str], path: str, where: str) -> None:
    extra = sorted(str(k) for k in data if k not in allowed)
    if extra:
        raise DvcFileError(
            path, f"{where}validation failed: extra keys not allowed: {', '.join(extra)}"
        )


def _single_stage_outputs(content: bytes, path: str) -> list[TrackedOutput]:
    """Outputs of a `.dvc` file, checked against DVC's schema for it."""
    data = _load(content, path)
    if not isinstance(data, Mapping):
        raise DvcFileError(path, "validation failed: expected a mapping with `outs:`")
    _extra_keys(data, _SINGLE_STAGE_KEYS, path, "")
    folder = posixpath.dirname(path)
    wdir = data.get("wdir")
    if isinstance(wdir, str):
        folder = _join(folder, wdir)
    outs = data.get("outs") or []
    if not isinstance(outs, list):
        raise DvcFileError(path, "`outs:` must be a list")
    found: list[TrackedOutput] = []
    for entry in outs:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
            raise DvcFileError(path, "validation failed: each of `outs:` needs a `path`")
        # DVC 3 has no `metric: true` here any more: such a file fails validation.
        _extra_keys(entry, _OUT_KEYS, path, "outs: ")
        md5, legacy = _digest(entry)
        cached = entry.get("cache", True) is not False
        found.append(TrackedOutput(_join(folder, entry["path"]), cached, md5, legacy))
    return found


def _check_schema(data: Mapping[str, Any], path: str) -> None:
    """The parts of DVC's dvc.yaml schema that decide whether the file loads at all."""
    extra = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if extra:
        raise DvcFileError(path, f"extra keys not allowed: {', '.join(extra)}")
    metrics = data.get("metrics")
    if metrics is not None and (
        not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics)
    ):
        raise DvcFileError(path, "`metrics:` must be a list of paths")
    stages = data.get("stages")
    if stages is None:
        return
    if not isinstance(stages, Mapping):
        raise DvcFileError(path, "`stages:` must map stage names to stages")
    for name, stage in stages.items():
        if not isinstance(stage, Mapping):
            raise DvcFileError(path, f"stages.{name} must be a mapping")
        if "foreach" in stage or "do" in stage:
            if set(stage) != {"foreach", "do"} or not isinstance(stage["do"], Mapping):
                raise DvcFileError(path, f"stages.{name} needs `foreach` and a `do` mapping")
            stage = stage["do"]
        if "cmd" not in stage:
            raise DvcFileError(path, f"stages.{name}: required key not provided: `cmd`")
        extra = sorted(str(k) for k in stage if k not in _STAGE_KEYS)
        if extra:
            raise DvcFileError(path, f"stages.{name}: extra keys not allowed: {', '.join(extra)}")


def _lock_hashes(read: Callable[[str], bytes | None], dvc_yaml: str) -> dict[str, dict[str, Any]]:
    """`{stage name: {out path as written: its lock entry}}` from the dvc.lock beside it."""
    lock_path = posixpath.join(posixpath.dirname(dvc_yaml), LOCK_FILE)
    content = read(lock_path)
    if content is None:
        return {}
    data = _load(content, lock_path)
    if not isinstance(data, Mapping):
        return {}
    stages = data.get("stages", data if "schema" not in data else {})
    result: dict[str, dict[str, Any]] = {}
    if not isinstance(stages, Mapping):
        return result
    for name, stage in stages.items():
        outs = stage.get("outs") if isinstance(stage, Mapping) else None
        if isinstance(outs, list):
            result[str(name)] = {
                str(o["path"]): o for o in outs if isinstance(o, Mapping) and "path" in o
            }
    return result


def _stage_outputs(entries: Any, where: str, path: str) -> Iterable[tuple[str, bool]]:
    """(path as written, cached) of a stage's `outs`/`metrics`/`plots` list."""
    if entries is None:
        return
    if not isinstance(entries, list):
        raise DvcFileError(path, f"{where} must be a list")
    for entry in entries:
        if isinstance(entry, str):
            yield entry, True
        elif isinstance(entry, Mapping):
            for out, flags in entry.items():
                if flags is None:
                    flags = {}
                if not isinstance(flags, Mapping):
                    raise DvcFileError(path, f"{where}: expected a mapping for '{out}'")
                yield str(out), flags.get("cache", True) is not False
        else:
            raise DvcFileError(path, f"{where} entries must be paths")


def _pipeline(
    read: Callable[[str], bytes | None], content: bytes, path: str
) -> tuple[list[TrackedOutput], list[str], list[str]]:
    """(outputs, stage metrics, top-level metrics) of one dvc.yaml, templates filled."""
    data = _load(content, path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise DvcFileError(path, "expected a mapping at the top level")
    _check_schema(data, path)
    folder = posixpath.dirname(path)
    context = root_context(read, path, data)
    top = [
        _join(folder, str(entry))
        for entry in resolve_list(context, data.get("metrics") or [], path, "metrics")
    ]
    lock = _lock_hashes(read, path)
    outputs: list[TrackedOutput] = []
    metrics: list[str] = []
    for stage in resolve_stages(read, context, data.get("stages") or {}, path):
        locked = lock.get(stage.name, {})
        for section in ("outs", "metrics", "plots"):
            where = f"stages.{stage.name}.{section}"
            for written, cached in _stage_outputs(stage.definition.get(section), where, path):
                md5, legacy = _digest(locked.get(written, {}))
                out = TrackedOutput(_join(stage.wdir, written), cached, md5, legacy)
                outputs.append(out)
                if section == "metrics":
                    metrics.append(out.path)
    return outputs, metrics, top


def load_layout(files: RevisionFiles) -> MetricsLayout:
    """Every DVC file of the revision loaded as DVC loads it; the first failure fails them all.

    As in DVC, DVC files inside a folder that an earlier file declares as an output are
    not read. Without a listing, the root dvc.yaml alone is read.
    """
    ignored = frozenset[str]()
    if files.listing is not None:
        ignored = ignored_paths(files.read, files.listing)
        candidates = dvc_files(files.listing, ignored)
    else:
        candidates = [PROJECT_FILE] if files.read(PROJECT_FILE) is not None else []
    outputs: dict[str, TrackedOutput] = {}
    stage_metrics: list[str] = []
    top_metrics: list[str] = []
    loaded: list[str] = []
    try:
        for path in candidates:
            if any(_under(path, out) and path != out for out in outputs):
                continue
            content = files.read(path)
            if content is None:
                continue
            if posixpath.basename(path) == PROJECT_FILE:
                outs, metrics, top = _pipeline(files.read, content, path)
                top_metrics.extend(top)
            else:
                outs, metrics = _single_stage_outputs(content, path), []
            stage_metrics.extend(metrics)
            for out in outs:
                outputs.setdefault(out.path, out)
            loaded.append(path)
    except DvcFileError as exc:
        return MetricsLayout(dvc_files=tuple(loaded), failure=exc, ignored=ignored)
    declared = list(dict.fromkeys(stage_metrics + top_metrics))
    return MetricsLayout(tuple(declared), outputs, tuple(loaded), ignored=ignored)


# ---------------------------------------------------------------------------- reading


def _containing(layout: MetricsLayout, path: str) -> TrackedOutput | None:
    """The output `path` is, or the tracked directory it lies in."""
    if path in layout.outputs:
        return layout.outputs[path]
    for out in layout.outputs.values():
        if out.is_dir and path.startswith(out.path + "/"):
            return out
    return None


def _manifest(files: RevisionFiles, out: TrackedOutput) -> dict[str, str] | None:
    """`{relative path: md5}` of a tracked directory, from its `.dir` object in the cache."""
    if files.cache is None or out.md5 is None:
        return None
    content = files.cache(object_path(out.md5, out.legacy))
    if content is None:
        return None
    try:
        entries = json.loads(content)
    except ValueError:
        return None
    if not isinstance(entries, list):
        return None
    return {
        str(e["relpath"]): str(e["md5"])
        for e in entries
        if isinstance(e, Mapping) and "relpath" in e and "md5" in e
    }


def expand(files: RevisionFiles, layout: MetricsLayout, paths: Sequence[str]) -> list[str]:
    """Each path, or the files under it when it is a folder at that revision; in order, once.

    A folder's files are the committed ones and the outputs DVC tracks in it, a tracked
    directory's read from its `.dir` listing. When that listing cannot be read the folder
    stays as it is and fails to read later, as in DVC.
    """
    result: list[str] = []
    for path in paths:
        result.extend(_expand_one(files, layout, path))
    return list(dict.fromkeys(result))


def _expand_one(files: RevisionFiles, layout: MetricsLayout, path: str) -> list[str]:
    if files.listing is None and not layout.outputs:
        return [path]
    found: list[str] = []
    prefix = "" if path in ("", ".") else path + "/"
    found.extend(p for p in files.listing or () if p.startswith(prefix) and p not in layout.ignored)
    for out in layout.outputs.values():
        inside = out.path.startswith(prefix)
        if not (inside or (out.is_dir and _under(path, out.path))):
            continue
        if not out.is_dir:
            found.append(out.path)
            continue
        manifest = _manifest(files, out)
        if manifest is None:
            return [path]  # DVC cannot list it either: the folder is read as a file, and fails
        for relative in manifest:
            full = f"{out.path}/{relative}"
            if full.startswith(prefix):
                found.append(full)
    return sorted(set(found)) if found else [path]


def read_metrics_file(files: RevisionFiles, layout: MetricsLayout, path: str) -> bytes:
    """A metrics file's bytes: committed, else from DVC's cache; MetricsFileError says why not."""
    content = files.read(path)
    if content is not None:
        return content
    out = _containing(layout, path)
    if out is None:
        raise MetricsFileError(path, MISSING)
    if not out.cache:
        raise MetricsFileError(path, "is declared with `cache: false` but is not committed")
    if out.md5 is None:
        raise MetricsFileError(
            path,
            "is a DVC output with no hash at this revision (no dvc.lock or .dvc entry): "
            "DVC cannot read it either",
        )
    if files.cache is None:
        raise MetricsNotInGit(path, f"{NOT_IN_GIT}: {CACHE_ADVICE}")
    md5: str | None = out.md5
    if out.is_dir:
        manifest = _manifest(files, out)
        if manifest is None:
            raise _missing_from_cache(path, out.md5)
        md5 = manifest.get(path[len(out.path) + 1 :])
        if md5 is None:
            raise MetricsFileError(path, f"is not in the DVC-tracked directory {out.path}")
    assert md5 is not None
    content = files.cache(object_path(md5, out.legacy))
    if content is None:
        raise _missing_from_cache(path, md5)
    return content


def _missing_from_cache(path: str, md5: str) -> MetricsFileError:
    return MetricsNotInGit(
        path,
        f"{NOT_IN_GIT}, and the local DVC cache has no copy of it (md5 {md5}): "
        f"`dvc pull` it, or {CACHE_ADVICE}",
    )
