"""The course as a website (`make site`, docs/site/build.py): it builds, its links resolve, and every page
loads in the real headless Chromium the browser test uses, with no console error; every lesson page that
holds `make course`'s outputs shows its figures.

The site is built once into a temporary folder from a fresh staging folder, with whatever executed
lessons course-report/ holds; lesson 00 is executed first (as `make course` runs it) where course-report/
has no copy of it, so that at least one lesson page has real outputs. The pages are served over HTTP on
127.0.0.1, as `python -m http.server -d site` serves them. Without Chromium the browser test is skipped,
and with LABKIT_REQUIRE_BROWSER=1 (set by .ci/run) it fails instead, as tests/test_browser.py does.

Run it alone:  .venv/bin/python -m pytest tests/test_site.py
"""

import functools
import html.parser
import http.server
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS, _missing

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("site_build", ROOT / "docs" / "site" / "build.py")
site_build = importlib.util.module_from_spec(spec)
sys.modules["site_build"] = site_build
spec.loader.exec_module(site_build)


# --------------------------------------------------------------------------- the links, without a browser


class Links(html.parser.HTMLParser):
    """Every href and src of a page, and every id it defines."""

    def __init__(self):
        super().__init__()
        self.urls, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.update(v for k, v in attrs.items() if k in ("id", "name") and v and tag != "meta")
        self.urls += [v for k, v in attrs.items() if k in ("href", "src") and v]


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8", errors="replace"))
    return links


def broken_links(site: Path) -> list[str]:
    """``page -> url`` for every relative link of every HTML page under ``site`` whose file is missing, or whose
    ``#fragment`` names no element of the page it points to (external and data: URLs are not followed)."""
    pages = {p: parse(p) for p in site.rglob("*.html") if "assets" not in p.relative_to(site).parts}
    broken = []
    for page, links in pages.items():
        for url in links.urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith("#") and not url[1:]:
                continue
            path = unquote(parts.path)
            target = (site / path.lstrip("/")) if path.startswith("/") else (page.parent / path if path else page)
            if target.is_dir() or path.endswith("/"):
                target = target / "index.html"
            if not target.resolve().is_file():
                broken.append(f"{page.relative_to(site)} -> {url}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target.resolve()].ids if target.resolve() in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)} -> {url} (no such anchor)")
    return broken


def test_the_link_checker_finds_a_missing_page_and_a_missing_anchor(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text("<h1 id='top'>A</h1><a href='../b/'>b</a><a href='#top'>up</a>"
                                                "<img src='data:image/png;base64,AA'><a href='https://x.org/'>x</a>")
    (tmp_path / "index.html").write_text("<a href='a/#top'>a</a><a href='a/#nope'>a</a><a href='c.html'>c</a>")
    assert sorted(broken_links(tmp_path)) == ["a/index.html -> ../b/", "index.html -> a/#nope (no such anchor)",
                                               "index.html -> c.html"]


# --------------------------------------------------------------------------- staging, without mkdocs


def test_a_lesson_without_outputs_says_when_they_appear(tmp_path):
    lesson = site_build.lessons()[0]
    assert not site_build.stage_lesson(lesson, tmp_path / "nothing-here", tmp_path)
    note = nbformat.read(tmp_path / lesson.name, as_version=4).cells[1].source
    assert "No outputs yet" in note and "make course" in note and f'href="{lesson.name}"' in note


def test_an_executed_lesson_is_staged_with_its_outputs(tmp_path):
    lesson = site_build.lessons()[0]
    nb = nbformat.read(lesson, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="measured\n")]
    (tmp_path / "executed").mkdir()
    nbformat.write(nb, tmp_path / "executed" / lesson.name)
    assert site_build.stage_lesson(lesson, tmp_path / "executed", tmp_path)
    staged = nbformat.read(tmp_path / lesson.name, as_version=4)
    assert "Outputs from <code>make course</code>" in staged.cells[1].source
    assert any(o.get("text") == "measured\n" for c in staged.cells if c.cell_type == "code" for o in c.outputs)


def test_links_to_repository_files_off_the_site_point_at_the_repository(tmp_path):
    repo = site_build.repository_url()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "cli.md").write_text("# CLI")
    text = "[cli](cli.md) [make](../Makefile) [tests](../tests) [web](https://x.org/) [gone](nowhere.md)"
    assert site_build.relink(text, "docs/instructors.md", tmp_path, repo) == (
        f"[cli](cli.md) [make]({repo}/blob/main/Makefile) [tests]({repo}/tree/main/tests) [web](https://x.org/) "
        "[gone](nowhere.md)")


def test_the_course_report_links_to_the_lesson_pages(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "docs").mkdir()
    # what labkit.course.runner writes: a link to nbconvert's page of each executed lesson
    (tmp_path / "report" / "index.html").write_text("<a href='00_setup.html'>the executed lesson</a>")
    assert site_build.stage_report(tmp_path / "report", tmp_path / "docs")
    assert (tmp_path / "docs" / "course-report" / "index.html").read_text() == (
        "<a href='../notebooks/00_setup/'>the executed lesson</a>")
    assert "](course-report/index.html)" in (tmp_path / "docs" / "report.md").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert not site_build.stage_report(tmp_path / "nothing", elsewhere)
    assert "make course" in (elsewhere / "report.md").read_text()


def test_make_site_is_a_target():
    done = subprocess.run(["make", "-n", "site"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "docs/site/build.py" in done.stdout, done.stdout + done.stderr


# --------------------------------------------------------------------------- the built site


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The site, built from a fresh staging folder into a temporary one: (site folder, what was staged)."""
    tmp = tmp_path_factory.mktemp("site")
    executed = tmp / "executed"
    executed.mkdir()
    for path in site_build.EXECUTED.glob("[0-9][0-9]_*.ipynb"):        # what the last `make course` left
        shutil.copy2(path, executed / path.name)
    first = site_build.lessons()[0]
    if not (executed / first.name).is_file():                           # lesson 00, as `make course` runs it
        from labkit.course.claims import METRICS_ENV
        from labkit.course.runner import run_notebook

        before = os.environ.get(METRICS_ENV)
        try:
            row = run_notebook(first, executed)
        finally:
            os.environ.pop(METRICS_ENV, None) if before is None else os.environ.update({METRICS_ENV: before})
        assert row["passed"], row["error"]
    staged = site_build.build(tmp / "site", tmp / "stage", executed, pdf=False)
    return tmp / "site", staged


@pytest.mark.slow
def test_the_site_holds_every_page(built):
    site, staged = built
    lessons = site_build.lessons()
    for lesson in lessons:
        assert (site / "notebooks" / lesson.stem / "index.html").is_file(), lesson.name
        assert (site / "notebooks" / lesson.stem / lesson.name).is_file(), f"{lesson.name}: the download link's file"
    assert lessons[0].name in staged["executed"]
    for page in ["index.html", "CONTRIBUTING/index.html", "report/index.html", "docs/instructors/index.html",
                 "docs/workshop/index.html", "docs/workshop/build/cheatsheet/index.html",
                 "docs/workshop/build/agenda-half-day/index.html", "docs/workshop/build/cheatsheet.html"]:
        assert (site / page).is_file(), page
    for doc in (ROOT / "docs").glob("*.md"):
        assert (site / "docs" / doc.stem / "index.html").is_file(), doc.name
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "Open in Colab" in home and 'href="notebooks/00_setup/"' in home, "the home page is the README's lesson table"
    assert staged["report"] == (site / "course-report" / "index.html").is_file()


@pytest.mark.slow
def test_every_relative_link_of_the_site_resolves(built):
    site, _ = built
    assert not broken_links(site), "\n".join(broken_links(site))


@pytest.mark.slow
def test_every_page_loads_in_chromium_and_executed_lessons_show_their_figures(built):
    missing = _missing()
    if missing:
        if os.environ.get("LABKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LABKIT_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(f"site browser test skipped: {missing}")
    from playwright.sync_api import sync_playwright

    site, staged = built
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    pages = sorted(str(p.relative_to(site)) for p in site.rglob("*.html") if "assets" not in p.relative_to(site).parts)
    problems, figures = [], {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(f"{page.url}: console: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
            # a request the next navigation cancels (net::ERR_ABORTED: the search index, say) is not a failure
            page.on("requestfailed", lambda r: "ERR_ABORTED" not in (r.failure or "") and problems.append(
                f"{page.url}: failed to load {r.url}: {r.failure}"))
            page.on("response", lambda r: r.status >= 400 and problems.append(f"{page.url}: HTTP {r.status} {r.url}"))
            for name in pages:
                lesson = name.startswith("notebooks/")
                response = page.goto(base + name, wait_until="networkidle" if lesson else "load")
                if response is None or not response.ok:
                    problems.append(f"{name}: HTTP {response and response.status}")
                if lesson and f"{Path(name).parent.name}.ipynb" in staged["executed"]:
                    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=20_000)
                    figures[name] = page.evaluate("() => [...document.querySelectorAll('.jupyter-wrapper img')]"
                                                  ".map(i => [i.naturalWidth, i.naturalHeight])")
            browser.close()
    finally:
        server.shutdown()
    assert len(pages) > 20 and not problems, "\n".join(problems)
    assert figures, "no lesson page with make course's outputs"
    for name, sizes in figures.items():
        assert sizes, f"{name}: an executed lesson shows no figure"
        assert all(w > 0 and h > 0 for w, h in sizes), f"{name}: a figure did not load: {sizes}"
