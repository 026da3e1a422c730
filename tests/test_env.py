"""Profiles and the hardware rules."""

import logging
import sys
import types

import pytest
import torch

from labkit import env


def test_profile_follows_the_environment_variable(monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "full")
    assert env.profile() == "full"
    monkeypatch.setenv("LABKIT_PROFILE", "Quick ")
    assert env.profile() == "quick"


def test_profile_auto_detects_the_gpu(monkeypatch):
    monkeypatch.delenv("LABKIT_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert env.profile() == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.profile() == "full"
    # Colab's T4 runs quick until the full profile has been run through there; LABKIT_PROFILE still picks
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert env.on_colab() and env.profile() == "quick"
    monkeypatch.setenv("LABKIT_PROFILE", "full")
    assert env.profile() == "full"


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "turbo")
    with pytest.raises(ValueError, match="quick"):
        env.profile()


def test_labkit_seed_sets_the_course_seed_and_every_run_seed(monkeypatch):
    from labkit import train

    monkeypatch.delenv("LABKIT_SEED", raising=False)
    assert env.seed() == 0 and train.TrainConfig().seed == 0
    monkeypatch.setenv("LABKIT_SEED", " 2 ")
    assert env.seed() == 2 and train.TrainConfig().seed == 2 and env.env_report()["seed"] == 2
    assert train.TrainConfig(seed=5).seed == 5                  # an explicit seed still wins
    monkeypatch.setenv("LABKIT_SEED", "two")
    with pytest.raises(ValueError, match="LABKIT_SEED='two'"):
        env.seed()


def test_every_profile_has_the_same_tasks():
    assert set(env.PROFILES["quick"]) == set(env.PROFILES["full"])
    for task in env.PROFILES["quick"]:
        assert set(env.PROFILES["quick"][task]) == set(env.PROFILES["full"][task]), task


def test_settings_returns_a_copy(monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "quick")
    s = env.settings("tone")
    s["max_steps"] = -1
    assert env.settings("tone")["max_steps"] > 0
    with pytest.raises(KeyError):
        env.settings("no-such-task")


def test_cpu_trains_in_fp32_without_gradient_checkpointing(monkeypatch):
    # fp32 on every CPU: native bf16 trains as well but a run is hardly faster (bench/bf16_vs_fp32.py)
    for native in (False, True):
        monkeypatch.setattr(env, "native_bf16", lambda flags=None, native=native: native)
        assert env.train_dtype("cpu") == env.weights_dtype("cpu") == torch.float32
    assert env.use_gradient_checkpointing("cpu") is False


def test_cpu_capability_from_the_flags():
    avx2 = {"sse4_2", "avx", "avx2", "fma"}
    assert not env.native_bf16(avx2) and env.cpu_capability(avx2) == "AVX2, no native bf16"
    zen4 = avx2 | {"avx512f", "avx512bw", "avx512_bf16"}
    assert env.native_bf16(zen4) and env.cpu_capability(zen4) == "AVX-512 + native bf16"
    sapphire = zen4 | {"amx_bf16", "amx_tile"}
    assert env.cpu_capability(sapphire) == "AMX + native bf16"
    assert env.native_bf16({"asimd", "bf16"}) and not env.native_bf16(set())
    assert isinstance(env.cpu_flags(), set)


def test_gpu_rules(monkeypatch):
    # PyTorch's is_bf16_supported() says True on a T4 (emulated bf16): the rule reads the compute capability
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (8, 0))   # A100
    assert env.train_dtype("cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))   # Colab's T4
    assert env.train_dtype("cuda") == env.weights_dtype("cuda") == torch.float16
    assert env.use_gradient_checkpointing("cuda") is True


def test_env_report_names_versions_and_profile():
    report = env.env_report()
    for key in ("python", "torch", "transformers", "peft", "trl", "onnxruntime-genai", "device",
                "cpu", "cpu_threads", "memory_total_gb", "profile", "train_dtype"):
        assert key in report, key
    assert report["cpu_threads"] >= 1


def test_any_labkit_import_quiets_bitsandbytes_cpu_kernel_warning():
    # lessons 02 and 03 import labkit.plots or bitsandbytes before labkit.models: the warning that an
    # optional hub kernel could not be fetched must be off from the first labkit import on
    import subprocess

    code = ("import logging, labkit.plots, bitsandbytes.functional; "
            "print(logging.getLogger('bitsandbytes.backends.cpu.ops').getEffectiveLevel())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(logging.ERROR)
    assert "gemm_4bit_forward" not in out.stderr
