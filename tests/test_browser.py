"""The course in a real browser: JupyterLab started the way `make lab` starts it, a lesson opened
and run through JupyterLab's own menu in headless Chromium, driven by Playwright.

Needs Debian's `chromium` (or $LABKIT_CHROMIUM) and the `playwright` Python package (its browser
downloads are not used). Without them the test is skipped and pytest's summary says why; with
LABKIT_REQUIRE_BROWSER=1 (set by .ci/run) a missing browser is a failure instead.

Run it alone:  .venv/bin/python -m pytest tests/test_browser.py   (screenshots: course-report/browser/)
"""

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LABKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# The flags a headless Chromium needs here: no sandbox as root, and no background connections,
# which a machine without internet refuses by the dozen.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# What a learner runs: lesson 00 whole, and a training lesson's first sections (lesson 01 up to its
# fine-tuning, section 5: the prompting baselines, each scored on the test split).
LESSONS = {"00_setup.ipynb": None, "01_why_finetune.ipynb": "## 5."}
RUN_TIMEOUT_S = 600   # lesson 00 converts the base model on a machine that has never run it (about a minute)


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -r requirements.txt)"
    if not CHROMIUM:
        return "Chromium is not installed (Debian: apt-get install chromium; or set LABKIT_CHROMIUM)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_lesson(name: str, folder: Path) -> None:
    """Copy a lesson into ``folder``; with a heading in LESSONS, only the cells before it."""
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    stop = LESSONS[name]
    if stop:
        end = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith(stop))
        nb.cells = nb.cells[:end]
    nbformat.write(nb, folder / name)


@pytest.fixture(params=list(LESSONS))
def jupyter_lab(tmp_path, request):
    """`make lab`'s command (`jupyter lab notebooks/`) on a copy of the lesson, on its own port
    with its own token; yields the lab's base URL and token. The copy keeps the outputs the UI
    writes out of the repository."""
    missing = _missing()
    if missing:
        if os.environ.get("LABKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LABKIT_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(f"browser test skipped: {missing}")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    copy_lesson(request.param, notebooks)
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyter.log", "w")
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "notebooks/", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         *(["--allow-root"] if os.geteuid() == 0 else [])],   # as `make lab` does
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "JUPYTER_NO_CONFIG": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if lab.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(tmp_path / 'jupyter.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url, token, notebooks, request.param
    finally:
        lab.terminate()
        try:
            lab.wait(timeout=20)
        except subprocess.TimeoutExpired:
            lab.kill()
        log.close()


def _kernel_states(url: str, token: str) -> list[str]:
    """The execution state of every running kernel, from the Jupyter server's REST API."""
    import json

    with urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=5) as r:
        return [k["execution_state"] for k in json.load(r)]


def _wait_idle(url: str, token: str, timeout: float, settle: float = 3.0) -> None:
    """Wait until a kernel runs and has been idle for ``settle`` seconds."""
    deadline, idle_since = time.time() + timeout, None
    while time.time() < deadline:
        states = _kernel_states(url, token)
        if states and all(s == "idle" for s in states):
            idle_since = idle_since or time.time()
            if time.time() - idle_since >= settle:
                return
        else:
            idle_since = None
        time.sleep(0.5)
    raise TimeoutError(f"the kernel was not idle after {timeout:.0f} s: {_kernel_states(url, token)}")


@pytest.mark.slow
def test_a_learner_runs_a_lesson_in_jupyterlab(jupyter_lab, tmp_path):
    import nbformat
    from playwright.sync_api import sync_playwright

    url, token, folder, lesson = jupyter_lab
    # next to make course's report, where an instructor looks (course-report/ is not committed)
    screenshot = ROOT / "course-report" / "browser" / f"{Path(lesson).stem}.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    saved = folder / lesson
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{url}/lab/tree/{lesson}?token={token}")
            page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
            _wait_idle(url, token, timeout=120)            # the kernel has started
            # Run > Run All Cells, through JupyterLab's menu as a learner would
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .jp-OutputArea-output').length > 0",
                                   timeout=60_000)
            try:
                _wait_idle(url, token, timeout=RUN_TIMEOUT_S)
                # the page, not only the kernel: on a loaded machine the kernel can sit idle for a few seconds
                # while the browser is still sending the queued cells, so also wait until no cell shows [*]
                page.wait_for_function(
                    "() => ![...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')].some(e => e.textContent.includes('*'))",
                    timeout=RUN_TIMEOUT_S * 1000)
                _wait_idle(url, token, timeout=RUN_TIMEOUT_S)
            finally:
                page.screenshot(path=str(screenshot), full_page=True)
            # what the page shows: every output area's text (textContent: also cells scrolled out of view)
            outputs = page.evaluate(
                "() => [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')].map(e => e.textContent)")
            news_prompt = page.get_by_text("official Jupyter news").count()   # `make` answers it (overrides.json)
            busy = page.evaluate(
                "() => [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')].filter(e => e.textContent.includes('*')).length")
            before = saved.stat().st_mtime
            page.keyboard.press("Control+s")                   # File > Save: the outputs, as the learner sees them
            deadline = time.time() + 30
            while saved.stat().st_mtime == before and time.time() < deadline:
                time.sleep(0.2)
        finally:
            browser.close()
    print(f"\nscreenshot of {lesson} after Run All: {screenshot}")
    text = "\n".join(outputs)
    errors = [t for t in outputs if re.search(r"Traceback|\w+Error: ", t)]
    assert not errors, f"a cell shows an error (screenshot {screenshot}):\n{errors[0][:2000]}"
    assert busy == 0, f"{busy} cell(s) still running or queued (screenshot {screenshot})"
    assert news_prompt == 0, f"JupyterLab asks about fetching news (screenshot {screenshot})"
    if lesson.startswith("00"):
        # the environment report (a table of versions and the hardware rule) ...
        assert all(key in text for key in ("torch", "transformers", "train_dtype", "profile")), text[:2000]
        # ... and the base model's first chat reply, timed
        assert re.search(r"\d+ tokens in [\d.]+ s = [\d.]+ tokens/s", text), text[-2000:]
    else:  # lesson 01's prompting baselines, each measured on the test split
        for approach in ("zero-shot prompt", "few-shot prompt", "bare template"):
            assert re.search(approach + r".*accuracy 0\.\d+, \d+ prompt tokens", text), (approach, text[-2000:])
    # the saved notebook: every code cell ran, in order, and none raised
    nb = nbformat.read(saved, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), [c.execution_count for c in code]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert screenshot.stat().st_size > 10_000
