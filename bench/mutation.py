"""`make mutation`: mutmut over the pure core, then a score table per module and overall."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.mutation.file_mutation import mutate_file_contents
from mutmut.utils.format_utils import get_mutant_name

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
LOG = MUTANTS / "mutmut.log"
SURVIVORS = MUTANTS / "survivors.txt"

# The modules of the table, in its order; `[tool.mutmut] only_mutate` names the same files.
MODULES: Sequence[tuple[str, Path]] = (
    ("gates", Path("bot/core/gates.py")),
    ("metrics", Path("bot/core/metrics.py")),
    ("changes", Path("bot/core/changes.py")),
    ("dvc", Path("bot/core/dvc.py")),
    ("comparison", Path("bot/core/comparison.py")),
    ("commands", Path("bot/core/commands.py")),
)
# The functions of commands.py that word replies rather than read comments; shown as a sub-row so
# the parser's own score can be read apart from the wording's.
REPLY_FUNCTIONS = frozenset(
    {
        "help_text",
        "unknown_command_reply",
        "refusal",
        "problems_reply",
        "stale_reply",
        "not_head_reply",
        "old_button_reply",
        "_describe_parameter",
        "quote_line",
        "_code_span",
        "_longest_run",
        "_escape",
    }
)

# mutmut's exit codes (mutmut/stats.py). A timeout means the tests noticed the mutant (they
# hung); everything else that is not a kill, "no tests" included, counts against the score.
KILLED_CODES = frozenset({1, 3, 37})
TIMEOUT_CODES = frozenset({36, 24, -24, 152, 255})
NO_TESTS_CODES = frozenset({5, 33})


@dataclass
class Tally:
    """The results of one row of the table."""

    killed: int = 0
    timeout: int = 0
    survived: int = 0
    no_tests: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.killed + self.timeout + self.survived + self.no_tests + self.other

    @property
    def caught(self) -> int:
        return self.killed + self.timeout

    def add(self, code: int) -> None:
        if code in KILLED_CODES:
            self.killed += 1
        elif code in TIMEOUT_CODES:
            self.timeout += 1
        elif code == 0:
            self.survived += 1
        elif code in NO_TESTS_CODES:
            self.no_tests += 1
        else:
            self.other += 1  # suspicious, segfault, interrupted: looked at by hand


def function_of(mutant: str) -> str:
    """`bot.core.commands.xǁ_Blocksǁis_plain__mutmut_3` → `is_plain`; `x_parse__mutmut_1` →
    `parse`."""
    mangled = mutant.rpartition(".")[2].partition("__mutmut_")[0]
    if "ǁ" in mangled:
        return mangled.rpartition("ǁ")[2]
    return mangled.removeprefix("x_")


def all_mutants(modules: Sequence[str] = ()) -> list[str]:
    """Every mutant of the six modules (or of those named), module by module in source order, as
    mutmut names them."""
    names: list[str] = []
    for name, path in MODULES:
        if modules and name not in modules:
            continue
        mutated = mutate_file_contents(str(path), (ROOT / path).read_text())
        names.extend(get_mutant_name(path, name) for name in mutated.mutant_names)
    return names


def chosen_modules(text: str) -> list[str]:
    """`MUTATION_MODULES=metrics,dvc` → `["metrics", "dvc"]`; empty for every module."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = [name for name, _ in MODULES]
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(known)
        sys.exit(f"MUTATION_MODULES: unknown module {', '.join(unknown)}; known: {listed}")
    return names


def module_pattern(name: str) -> str:
    """The mutmut name pattern of every mutant of one module: `bot.core.dvc.*`."""
    path = dict(MODULES)[name]
    return ".".join(path.with_suffix("").parts) + ".*"


def spread(names: Sequence[str], size: int) -> list[str]:
    """`size` names evenly spaced over `names`, so every module and function gets its share."""
    if size >= len(names):
        return list(names)
    return [names[index * len(names) // size] for index in range(size)]


def run_mutmut(selection: Sequence[str], jobs: int | None) -> None:
    # A fresh copy every time: mutmut reuses a result while the function is unchanged, even when
    # the tests that judged it have changed since.
    shutil.rmtree(MUTANTS, ignore_errors=True)
    MUTANTS.mkdir()
    command = [str(Path(sys.executable).parent / "mutmut"), "run"]
    if jobs is not None:
        command += ["--max-children", str(jobs)]
    with LOG.open("w") as log:
        result = subprocess.run([*command, *selection], cwd=ROOT, stdout=log, stderr=log)
    if result.returncode != 0:
        tail = LOG.read_text(errors="replace")[-4000:]
        sys.exit(f"mutmut failed (exit {result.returncode}); the end of {LOG}:\n{tail}")


def results() -> dict[str, dict[str, int]]:
    """Each module's checked mutants and their exit codes (a sample leaves the rest unchecked)."""
    out: dict[str, dict[str, int]] = {}
    for name, path in MODULES:
        data = SourceFileMutationData(path=path)
        data.load()
        out[name] = {key: code for key, code in data.exit_code_by_key.items() if code is not None}
    return out


def tally(codes: Mapping[str, dict[str, int]]) -> list[tuple[str, Tally]]:
    """A row per module; commands.py also gets a row for each part, named `commands (part)`."""
    rows: list[tuple[str, Tally]] = []
    for module, by_mutant in codes.items():
        row = Tally()
        parts = {"parser": Tally(), "replies": Tally()}
        for mutant, code in by_mutant.items():
            row.add(code)
            part = "replies" if function_of(mutant) in REPLY_FUNCTIONS else "parser"
            parts[part].add(code)
        rows.append((module, row))
        if module == "commands":
            rows.extend((f"{module} ({part})", part_tally) for part, part_tally in parts.items())
    return rows


def score(row: Tally) -> str:
    return f"{100 * row.caught / row.total:.1f}%" if row.total else "-"


def table(rows: Sequence[tuple[str, Tally]]) -> str:
    header = ("module", "mutants", "killed", "timeout", "survived", "no tests", "other", "score")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for name, row in rows:
        if not row.total:  # a module left out by MUTATION_MODULES
            continue
        cells = (row.total, row.killed, row.timeout, row.survived, row.no_tests, row.other)
        lines.append(" | ".join([name, *(str(cell) for cell in cells), score(row)]))
    return "\n".join(f"| {line} |" for line in lines)


def write_survivors(codes: Mapping[str, dict[str, int]]) -> int:
    """The diff of every mutant the tests let through, for reading; returns how many."""
    paths = dict(MODULES)
    chunks: list[str] = []
    for module, by_mutant in codes.items():
        for mutant, code in by_mutant.items():
            if code in KILLED_CODES or code in TIMEOUT_CODES:
                continue
            diff = get_diff_for_mutant(mutant, path=paths[module])
            chunks.append(f"# {mutant} (exit {code})\n{diff}\n")
    SURVIVORS.write_text("\n".join(chunks))
    return len(chunks)


def main(argv: Sequence[str]) -> None:
    os.chdir(ROOT)  # mutmut reads its configuration and results relative to the working directory
    if "--report-only" in argv:  # the table of the last run, e.g. after reading its survivors
        report()
        return
    sample = int(os.environ.get("MUTATION_SAMPLE") or 0)
    jobs_text = os.environ.get("MUTATION_JOBS")
    jobs = int(jobs_text) if jobs_text else None
    modules = chosen_modules(os.environ.get("MUTATION_MODULES") or "")
    selection: list[str] = []
    if sample > 0:
        names = all_mutants(modules)
        selection = spread(names, sample)
        print(f"a spread sample of {len(selection)} of {len(names)} mutants (MUTATION_SAMPLE)")
    elif modules:
        selection = [module_pattern(name) for name in modules]
        print(f"only the mutants of {', '.join(modules)} (MUTATION_MODULES)")
    print(f"running mutmut; its output goes to {LOG.relative_to(ROOT)}", flush=True)
    started = time.monotonic()
    run_mutmut(selection, jobs)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    print(f"mutmut took {minutes}m{seconds:02d}s")
    report()


def report() -> None:
    codes = results()
    rows = tally(codes)
    survivors = write_survivors(codes)
    print()
    print(table(rows))
    print()
    print(f"{survivors} mutants not killed, with their diffs: {SURVIVORS.relative_to(ROOT)}")
    modules = [row for name, row in rows if "(" not in name]
    caught, total = sum(row.caught for row in modules), sum(row.total for row in modules)
    overall = 100 * caught / total if total else 0.0
    print(f"mutation score: {overall:.1f}% ({caught}/{total})")


if __name__ == "__main__":
    main(sys.argv[1:])
