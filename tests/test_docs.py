"""README.md, CONTRIBUTING.md and docs/*.md stay true: their links resolve, the `make` targets and
`labkit` commands they show exist (with the flags they show), the README's lesson table matches
notebooks/ and lesson_times.json, the README stays short, and each docs page says whom it is for.

Reads files and runs subprocesses only: it does not import labkit.
"""

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCS = [README] + [p for p in [ROOT / "CONTRIBUTING.md"] if p.is_file()] + PAGES
README_MAX_LINES = 150
PLACEHOLDERS = {"command", "cmd", "subcommand"}  # `labkit command --help` and the like

FENCE = re.compile(r"^ {0,3}(```|~~~)[^\n]*\n(.*?)^ {0,3}\1[ \t]*$", flags=re.M | re.S)
INLINE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", flags=re.M)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (where brackets are not links)."""
    return INLINE.sub("", FENCE.sub("", text))


def code(text: str) -> list[str]:
    """Every fenced code block and inline code span, continuation lines (`\\` + newline) joined."""
    blocks = [m.group(2) for m in FENCE.finditer(text)] + INLINE.findall(FENCE.sub("", text))
    return [re.sub(r"\\\n\s*", " ", b) for b in blocks]


def relative_links(path: Path) -> list[str]:
    text = prose(path.read_text(encoding="utf-8"))
    targets = LINK.findall(text) + REFERENCE.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, flags=re.I) and not t.startswith("#")]


def test_there_are_docs():
    names = {p.name for p in PAGES}
    assert {"instructors.md", "cli.md", "benchmarks.md", "checks.md", "advanced.md"} <= names, names


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_relative_links_resolve(path):
    broken = [t for t in relative_links(path)
              if not (path.parent / t.split("#")[0].split("?")[0]).exists()]
    assert not broken, f"{rel(path)} links to files that do not exist: {broken}"


@functools.cache
def make_targets() -> frozenset[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        rule = re.match(r"^([A-Za-z0-9_.%/$() -]+?)\s*::?(?![=])(.*)$", line)
        if rule and not line.startswith("\t"):
            names = rule.group(1).split()
            targets.update(names if names != [".PHONY"] else rule.group(2).split())
    return frozenset(targets)


def make_uses(path: Path) -> list[str]:
    """The target of every `make ...` shown in a code block or span (VAR=value arguments skipped)."""
    uses = []
    for block in code(path.read_text(encoding="utf-8")):
        for m in re.finditer(r"(?<![\w./$-])make((?:\s+[A-Za-z_][A-Za-z0-9_]*=\S*)*)\s+([a-z][\w.-]*)", block):
            uses.append(m.group(2))
    return uses


def test_makefile_targets_are_parsed():
    assert {"lab", "test", "doctor", "course", "wheelhouse", "student", "model", "clean"} <= make_targets()


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_make_targets_exist(path):
    missing = sorted({t for t in make_uses(path) if t not in make_targets()})
    assert not missing, f"{rel(path)} shows `make` targets the Makefile does not have: {missing}"


def labkit_uses(path: Path) -> list[tuple[str, list[str]]]:
    """(command, flags) of every `labkit CMD ...` (or `-m labkit.cli CMD ...`) shown in code."""
    uses = []
    for block in code(path.read_text(encoding="utf-8")):
        for line in block.splitlines():
            for m in re.finditer(r"(?:(?<![\w.-])labkit|-m\s+labkit\.cli)\s+([a-z][\w-]*)(.*)", line):
                if m.group(1) in PLACEHOLDERS:
                    continue
                try:
                    words = shlex.split(m.group(2), comments=True)
                except ValueError:  # an apostrophe in a placeholder, e.g. <lesson 01's adapter>
                    words = m.group(2).split("#")[0].split()
                flags = []
                for word in words:
                    if word in ("|", ";", "&&", "||", ")"):
                        break
                    if re.fullmatch(r"--[a-z][\w-]*(=.*)?", word):
                        flags.append(word.split("=")[0])
                uses.append((m.group(1), flags))
    return uses


@functools.cache
@functools.lru_cache(maxsize=None)   # one `labkit CMD --help` process per command, whatever the pages show
def command_help(command: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "labkit.cli", command, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


LABKIT_USES = sorted({(rel(p), cmd, tuple(flags)) for p in DOCS for cmd, flags in labkit_uses(p)})
LABKIT_IDS = [f"{page}:{cmd}" for page, cmd, _ in LABKIT_USES]


def test_docs_show_labkit_commands():
    assert {cmd for _, cmd, _ in LABKIT_USES} >= {"finetune", "evaluate", "doctor"}


@pytest.mark.slow
@pytest.mark.parametrize("page,command,flags", LABKIT_USES, ids=LABKIT_IDS)
def test_labkit_commands_exist(page, command, flags):
    rc, text = command_help(command)
    assert rc == 0, f"{page} shows `labkit {command}`, which is not a labkit command:\n{text[-800:]}"
    unknown = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)]
    assert not unknown, f"{page} shows `labkit {command}` with flags it does not have: {unknown}"


def test_readme_lesson_table_is_current():
    done = subprocess.run([sys.executable, "docs/lesson_table.py", "--check", "README.md"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_lesson_table_names_a_differing_row(tmp_path):
    table = subprocess.run([sys.executable, "docs/lesson_table.py"], cwd=ROOT, capture_output=True,
                           text=True, timeout=120, check=True).stdout.splitlines()
    row = table[3]  # lesson 01's row: change its reading minutes
    cells = row.split(" | ")
    cells[3] = str(int(cells[3]) + 1)
    readme = tmp_path / "README.md"
    readme.write_text("\n".join(["<!-- lesson-table -->", *table[:3], " | ".join(cells), *table[4:],
                                 "<!-- /lesson-table -->", ""]))
    done = subprocess.run([sys.executable, "docs/lesson_table.py", "--check", str(readme)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and f"row {row.split(' | ')[0].strip('| ')} differs" in done.stderr, done.stderr


def test_readme_is_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; at most {README_MAX_LINES} (move detail to docs/)"


@pytest.mark.parametrize("path", PAGES, ids=rel)
def test_docs_page_says_whom_it_is_for(path):
    lines = [l.strip() for l in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines()]
    first = next((l for l in lines if l and not l.startswith("#")), "")
    assert first.startswith("For "), f"{rel(path)}: the first line after the title should say whom it is for " \
                                     f"(start with 'For '); it is: {first[:80]!r}"
