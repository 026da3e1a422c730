"""The course as a website: stage the pages, then let mkdocs (mkdocs-material + mkdocs-jupyter) render them.

    python docs/site/build.py              # or: make site   (stages docs/site/build/, writes site/)
    python docs/site/build.py --no-pdf     # without the cheat sheet's PDF (the rest is the same)
    python -m http.server -d site          # then open http://localhost:8000

The staging folder copies the repository's own layout, so the links the pages already have (README ->
notebooks/, docs/ -> ../README.md) resolve on the site as they do on GitHub:

- ``README.md``: the home page (its intro and lesson table); ``CONTRIBUTING.md``; ``docs/*.md``;
- ``docs/workshop/README.md`` and the workshop pack, built by docs/workshop/build.py into ``docs/workshop/build/``
  (its markdown pages, plus the printable cheat sheet and rubric);
- ``notebooks/NN_*.ipynb``: every lesson, as ``make course`` executed it (``course-report/``, outputs and
  figures included) where it did, else the source with a note that outputs appear after ``make course``;
- ``course-report/index.html`` when ``make course`` wrote one (its links now point at the lesson pages),
  behind the page ``report.md``;
- ``assets/mathjax/``: MathJax 3 from the django-static-mathjax package and docs/site/mathjax.js, which sets
  it up for the lessons' ``$...$``: the maths needs no CDN.

A link to a repository file that is not on the site becomes a link to it in the repository
(pyproject.toml's ``[project.urls] Repository``). mkdocs.yml holds the settings; this script writes
``docs/site/build/mkdocs.yml`` (the nav, which lists whatever lessons exist) and runs ``mkdocs build --strict``.
"""

from __future__ import annotations

import argparse
import datetime
import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STAGE, SITE, EXECUTED = HERE / "build", ROOT / "site", ROOT / "course-report"
DOCS_ORDER = ["instructors", "cli", "checks", "benchmarks", "advanced"]   # as the README's "More" lists them
PRINTABLE = ["cheatsheet.html", "cheatsheet.pdf", "rubric.html"]          # the pack's pages to print, kept as they are
MD_LINK = re.compile(r"(\]\()([^)\s#]+)([^)]*\))")
HEADING, CODE = re.compile(r"^#{1,6} .*$", flags=re.M), re.compile(r"`([^`\n]+)`")


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def lessons(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def repository_url(root: Path = ROOT) -> str:
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^\s*Repository\s*=\s*"([^"]+)"', text, flags=re.M).group(1).rstrip("/")


def relink(text: str, page: str, docs: Path, repo: str) -> str:
    """Relative markdown links of the staged ``page`` (its path in the repository) that miss the staged
    site but name a repository file: pointed at that file in the repository."""
    def fix(m):
        target = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I) or target.startswith("/"):
            return m.group(0)
        path = os.path.normpath(os.path.join(os.path.dirname(page), target))
        if (docs / path).exists() or not (ROOT / path).exists() or path.startswith(".."):
            return m.group(0)
        kind = "tree" if (ROOT / path).is_dir() else "blob"
        return f"{m.group(1)}{repo}/{kind}/main/{path}{m.group(3)}"
    return MD_LINK.sub(fix, text)


def note_cell(lesson: Path, executed: Path | None) -> nbformat.NotebookNode:
    """The note under a lesson's title: where its outputs come from, and the notebook to download. HTML, in
    mkdocs-material's admonition classes: nbconvert renders a notebook's markdown, without mkdocs' extensions."""
    download = f'<a href="{lesson.name}">Download the notebook</a>, or open it with <code>make lab</code>.'
    if executed:
        when = datetime.datetime.fromtimestamp(executed.stat().st_mtime).strftime("%Y-%m-%d")
        kind, title = "note", f"Outputs from <code>make course</code> ({when})"
        text = "The numbers and figures below are the ones this lesson printed when <code>make course</code> ran it."
    else:
        kind, title = "warning", "No outputs yet"
        text = ("This page shows the lesson's source: its outputs and figures appear after <code>make course</code> "
                "(then <code>make site</code> again).")
    return nbformat.v4.new_markdown_cell(f'<div class="admonition {kind}"><p class="admonition-title">{title}</p>'
                                         f"<p>{text} {download}</p></div>")


def stage_lesson(lesson: Path, executed_dir: Path | None, dest: Path) -> bool:
    """Copy one lesson into ``dest``: the executed copy where there is one, with the note cell; True if executed."""
    executed = executed_dir / lesson.name if executed_dir else None
    executed = executed if executed and executed.is_file() else None
    nb = nbformat.read(executed or lesson, as_version=4)
    for cell in (c for c in nb.cells if c.cell_type == "markdown"):
        # a `code` span in a heading as <code>: mkdocs-jupyter drops code spans from the sidebar's table of
        # contents, whose link then misses the heading's anchor (which keeps the words)
        cell.source = HEADING.sub(lambda m: CODE.sub(lambda c: f"<code>{html.escape(c.group(1))}</code>", m.group(0)),
                                  cell.source)
    nb.metadata.pop("widgets", None)   # saved widget state makes the page load a widget renderer from a CDN
    nb.cells.insert(1, note_cell(lesson, executed))
    nbformat.write(nb, dest / lesson.name)
    return executed is not None


def stage_report(executed_dir: Path | None, docs: Path) -> bool:
    """course-report/index.html, its links to nbconvert's pages (which load scripts from a CDN) pointed at the
    site's lesson pages instead; and report.md, the page that leads to it."""
    report = executed_dir / "index.html" if executed_dir else None
    if report and report.is_file():
        (docs / "course-report").mkdir()
        html = re.sub(r"href='(\d\d_[\w-]+)\.html'", r"href='../notebooks/\1/'", report.read_text(encoding="utf-8"))
        (docs / "course-report" / "index.html").write_text(html, encoding="utf-8")
        body = ("What the last `make course` measured on its machine: each lesson's result and minutes, the claims it "
                "checked and the numbers it recorded.\n\n[Open the course report](course-report/index.html)\n")
    else:
        body = "No report yet: `make course` runs every lesson and writes one; `make site` then puts it here.\n"
    (docs / "report.md").write_text(f"# Course report\n\nFor instructors and maintainers. {body}", encoding="utf-8")
    return bool(report and report.is_file())


def stage(stage_dir: Path, executed_dir: Path | None, pdf: bool) -> dict:
    """Write the staged pages into ``stage_dir/docs``; returns what was staged and the nav."""
    docs = stage_dir / "docs"
    shutil.rmtree(stage_dir, ignore_errors=True)
    (docs / "notebooks").mkdir(parents=True)
    repo = repository_url()
    executed = [l.name for l in lessons() if stage_lesson(l, executed_dir, docs / "notebooks")]

    pack = load("workshop_build", ROOT / "docs" / "workshop" / "build.py")
    built = docs / "docs" / "workshop" / "build"
    pack_dir = stage_dir / "workshop-pack"
    made = pack.build(pack_dir, pdf=pdf, links_from=pack.OUT)
    built.mkdir(parents=True)
    pack_pages = sorted(p.name for p in pack_dir.glob("*.md"))
    for name in pack_pages + [n for n in PRINTABLE if (pack_dir / n).is_file()]:
        shutil.copy2(pack_dir / name, built / name)

    pages = ["README.md", "CONTRIBUTING.md", "docs/workshop/README.md"]
    others = sorted(p.stem for p in (ROOT / "docs").glob("*.md") if p.stem not in DOCS_ORDER)
    doc_pages = [f"docs/{s}.md" for s in DOCS_ORDER + others if (ROOT / "docs" / f"{s}.md").is_file()]
    for page in pages + doc_pages:
        (docs / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / page, docs / page)
    extra = "\n## On this site\n\n" + "".join(
        f"- [{name[:-3]}](build/{name})\n" for name in pack_pages) + "".join(
        f"- [{name}](build/{name}) (to print)\n" for name in PRINTABLE if (built / name).is_file())
    with open(docs / "docs/workshop/README.md", "a", encoding="utf-8") as f:
        f.write(extra)
    for page in pages + doc_pages + [f"docs/workshop/build/{n}" for n in pack_pages]:
        path = docs / page
        path.write_text(relink(path.read_text(encoding="utf-8"), page, docs, repo), encoding="utf-8")
    home = docs / "README.md"     # the lesson table gets the width the left-hand nav would take
    home.write_text("---\nhide: [navigation]\n---\n" + home.read_text(encoding="utf-8"), encoding="utf-8")
    has_report = stage_report(executed_dir, docs)

    import mathjax                    # MathJax 3 (django-static-mathjax: static files only), for the lessons' maths
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    # its components, and of the combined files the one docs/site/mathjax.js loads
    shutil.copytree(es5, docs / "assets" / "mathjax",
                    ignore=lambda d, names: [n for n in names if Path(d) == es5 and n.endswith(".js") and n != "tex-chtml.js"])
    shutil.copy2(HERE / "mathjax.js", docs / "assets" / "mathjax" / "site.js")

    nav = [{"Home": "README.md"},
           {"Lessons": [f"notebooks/{l.name}" for l in lessons()]},
           {"Docs": doc_pages + ["CONTRIBUTING.md"]},
           {"Workshop": ["docs/workshop/README.md"] + [f"docs/workshop/build/{n}" for n in pack_pages]},
           {"Course report": "report.md"}]
    return {"docs": docs, "nav": nav, "executed": executed, "report": has_report, "pdf": made["pdf"]}


def build(out: Path = SITE, stage_dir: Path = STAGE, executed_dir: Path | None = EXECUTED, pdf: bool = True) -> dict:
    """Stage the pages, write the nav into ``stage_dir/mkdocs.yml`` (which inherits ROOT/mkdocs.yml) and build
    the site into ``out`` with ``mkdocs build --strict``; returns what :func:`stage` returned."""
    staged = stage(Path(stage_dir), Path(executed_dir) if executed_dir else None, pdf)
    config = {"INHERIT": os.path.relpath(ROOT / "mkdocs.yml", stage_dir), "docs_dir": "docs",
              "site_dir": str(Path(out).resolve()), "nav": staged["nav"]}
    (Path(stage_dir) / "mkdocs.yml").write_text(
        "# Written by docs/site/build.py: the settings are ROOT/mkdocs.yml's, the nav lists the lessons that exist\n"
        + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    # cwd: mkdocs-jupyter keeps its cache in .cache/ under it, so a fresh staging folder starts a fresh cache
    # NO_MKDOCS_2_WARNING: mkdocs-material's banner about its end of life (see mkdocs.yml), once per build otherwise
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-q", "-f", "mkdocs.yml"],
                   cwd=stage_dir, check=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    return staged


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=SITE, help="where to write the site (default: site/)")
    p.add_argument("--stage", type=Path, default=STAGE, help="the staging folder, emptied first (default: docs/site/build/)")
    p.add_argument("--executed", type=Path, default=EXECUTED,
                   help="where `make course` left the executed lessons (default: course-report/)")
    p.add_argument("--no-pdf", action="store_true", help="do not print the cheat sheet to PDF")
    args = p.parse_args(argv)
    staged = build(args.out, args.stage, args.executed, pdf=not args.no_pdf)
    print(f"lessons with outputs from make course: {', '.join(staged['executed']) or 'none'}; "
          f"course report: {'yes' if staged['report'] else 'none'}; {staged['pdf']}")
    print(f"site: {args.out}/ (python -m http.server -d {args.out}, then http://localhost:8000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
