"""Tests for labkit.onnx.serve on tiny random Llamas built here (no download, seconds)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

og = pytest.importorskip("onnxruntime_genai")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")
ort = pytest.importorskip("onnxruntime")

from test_export import PROMPTS, load_torch, make_tiny_model  # noqa: E402

from labkit.cli import main as cli
from labkit.onnx import adapter_files, build, serve
from labkit.onnx.adapter_files import AdapterError, check_onnx_adapter  # noqa: E402
from labkit.onnx.build import build_base, convert_adapter
from labkit.onnx.serve import MultiAdapterModel
from labkit.onnx.build import generate_adapter  # noqa: E402

# two adapters with different ranks and targets: the base gets the union of the targets
ADAPTERS = {"qv": dict(r=4, target_modules=["q_proj", "v_proj", "down_proj"], seed=1),
            "all": dict(r=8, target_modules="all-linear", seed=2)}


def save_adapter(model_dir: Path, folder: Path, r: int, target_modules, seed: int, **extra) -> Path:
    """A LoRA adapter with random (non-zero) A and B on the model in ``model_dir``."""
    from peft import LoraConfig, get_peft_model

    model, _ = load_torch(model_dir)
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=target_modules, init_lora_weights=False, **extra)
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def peft_model(model_dir: Path, adapter_dir: Path):
    from peft import PeftModel

    model, tokenizer = load_torch(model_dir)
    return PeftModel.from_pretrained(model, adapter_dir).eval(), tokenizer


def write_adapter_file(path: Path, base_id: int, a_shape, b_shape) -> Path:
    """A hand-made .onnx_adapter for layer 0's q_proj with the given A and B shapes."""
    arrays = {"model.layers.0.self_attn.q_proj.lora_A.weight": np.zeros(a_shape, np.float32),
              "model.layers.0.self_attn.q_proj.lora_B.weight": np.zeros(b_shape, np.float32)}
    fmt = ort.AdapterFormat()
    fmt.set_model_version(base_id)
    fmt.set_parameters({k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in arrays.items()})
    fmt.export_adapter(str(path))
    return path


@torch.no_grad()
def torch_logits(model, ids):
    return model(input_ids=torch.tensor([ids])).logits[0, -1].numpy()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="module")
def peft_dirs(tiny, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("peft")
    return {name: save_adapter(tiny, root / name, **spec) for name, spec in ADAPTERS.items()}


@pytest.fixture(scope="module")
def multi_fp32(tiny, peft_dirs, tmp_path_factory) -> Path:
    return generate_adapter(tiny, list(peft_dirs.values()), tmp_path_factory.mktemp("out") / "multi-fp32")


@pytest.fixture(scope="module")
def served(multi_fp32) -> MultiAdapterModel:
    return MultiAdapterModel(multi_fp32)


def test_generate_adapter_writes_base_and_adapter_files(multi_fp32, peft_dirs):
    import onnx

    names = sorted(p.name for p in multi_fp32.iterdir())
    assert {"genai_config.json", "model.onnx", "model.onnx.data", adapter_files.BASE_MANIFEST, "qv.onnx_adapter",
            "all.onnx_adapter"} <= set(names)
    manifest = adapter_files.read_base(multi_fp32)
    assert manifest["target_modules"] == sorted(build.ALL_LINEAR)  # union of both adapters' targets
    graph = onnx.load(str(multi_fp32 / "model.onnx"), load_external_data=False).graph
    lora_inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
                   for i in graph.input if ".lora_" in i.name}
    assert len(lora_inputs) == 2 * 2 * 7  # 2 layers x 7 projections x (A, B)
    assert lora_inputs["model.layers.0.self_attn.q_proj.lora_A.weight"] == [64, "lora_rank.model.layers.0.self_attn.q_proj"]
    assert lora_inputs["model.layers.1.mlp.down_proj.lora_B.weight"] == ["lora_rank.model.layers.1.mlp.down_proj", 64]
    defaults = {t.name: list(t.dims) for t in graph.initializer if t.name in lora_inputs}
    assert defaults["model.layers.0.self_attn.q_proj.lora_A.weight"] == [64, 0]  # empty default: no update
    # both adapter files are small next to the base
    base_mb = build.folder_size_mb(multi_fp32 / "model.onnx.data")
    assert all(build.folder_size_mb(multi_fp32 / f"{n}.onnx_adapter") < base_mb / 5 for n in ADAPTERS)


def test_conversion_round_trip(multi_fp32, peft_dirs):
    base = adapter_files.read_base(multi_fp32)
    for name, folder in peft_dirs.items():
        peft = adapter_files.read_peft_adapter(folder)
        version, stored = adapter_files.read_onnx_adapter(multi_fp32 / f"{name}.onnx_adapter")
        expected = adapter_files.lora_parameters(peft)
        assert sorted(stored) == sorted(expected)
        assert all(np.array_equal(stored[k], expected[k]) for k in stored)
        assert version == base["base"]["id"]
        # the update x @ A @ B equals PEFT's scaling * x A^T B^T on one module
        module = "model.layers.0.self_attn.q_proj"
        ab = peft["modules"][module]
        delta_peft = ab["scaling"] * ab["B"] @ ab["A"]
        delta_onnx = (stored[f"{module}.lora_A.weight"] @ stored[f"{module}.lora_B.weight"]).T
        assert np.allclose(delta_peft, delta_onnx, atol=1e-6)
        info = check_onnx_adapter(multi_fp32 / f"{name}.onnx_adapter", multi_fp32)
        assert info["ranks"] == [ADAPTERS[name]["r"]]


def test_parity_with_peft_per_adapter(tiny, peft_dirs, served):
    assert sorted(served.adapters) == sorted(ADAPTERS)
    plain, tokenizer = load_torch(tiny)
    for name, folder in peft_dirs.items():
        model, _ = peft_model(tiny, folder)
        for prompt in PROMPTS:
            ids = tokenizer(prompt)["input_ids"]
            assert np.abs(served.logits(ids, adapter=name) - torch_logits(model, ids)).max() < 1e-4
        ids = tokenizer(PROMPTS[0])["input_ids"]
        ref = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=2)[0, len(ids):]
        assert served.greedy_ids(ids, 12, adapter=name) == ref.tolist()[: len(served.greedy_ids(ids, 12, adapter=name))]
    # no adapter: the plain base model
    ids = tokenizer(PROMPTS[1])["input_ids"]
    assert np.abs(served.logits(ids, adapter=None) - torch_logits(plain, ids)).max() < 1e-4


def test_switching_returns_each_adapters_behaviour(tiny, peft_dirs, served):
    _, tokenizer = load_torch(tiny)
    ids = tokenizer(PROMPTS[2])["input_ids"]
    first = {name: served.logits(ids, adapter=name) for name in (*ADAPTERS, None)}
    # the adapters really differ from each other and from the base
    assert np.abs(first["qv"] - first["all"]).max() > 1e-2 and np.abs(first["qv"] - first[None]).max() > 1e-2
    for name in ("all", None, "qv", "all", "qv", None):   # switch back and forth in one loaded model
        assert np.array_equal(served.logits(ids, adapter=name), first[name])
    # a default adapter for requests that do not name one
    served.set_adapter("all")
    try:
        assert np.array_equal(served.logits(ids), first["all"])
        # two interleaved streams, each with its own adapter
        a = served.stream("hello world", max_new_tokens=6, adapter="qv")
        b = served.stream("hello world", max_new_tokens=6, adapter=None)
        pieces = [(next(a, ""), next(b, "")) for _ in range(6)]
        assert "".join(p for p, _ in pieces) == served.generate("hello world", max_new_tokens=6, adapter="qv")
        assert "".join(p for _, p in pieces) == served.generate("hello world", max_new_tokens=6, adapter=None)
        # the adapter travels with the request: a stream keeps the one in force when it was made
        expected_all = served.generate("hello world", max_new_tokens=6)
        later = served.stream("hello world", max_new_tokens=6)
        served.set_adapter("qv")
        assert "".join(later) == expected_all
    finally:
        served.set_adapter(None)
    assert np.array_equal(served.logits(ids), first[None])
    labels = ["joy", "anger"]
    label_ids = [tokenizer(" " + label)["input_ids"][0] for label in labels]
    expected = labels[int(np.argmax(first["qv"][label_ids]))]
    assert served.classify([ids], labels, label_ids, adapter="qv") == [expected]
    with pytest.raises(KeyError, match="No adapter 'nope'"):
        served.logits(ids, adapter="nope")


def test_int4_base_keeps_lora_in_float(tiny, peft_dirs, multi_fp32, tmp_path):
    import onnx

    out = generate_adapter(tiny, {"all": peft_dirs["all"]}, tmp_path / "multi-int4", precision="int4")
    graph = onnx.load(str(out / "model.onnx"), load_external_data=False).graph
    lora = [n for n in graph.node if "/lora_" in n.name and n.name.endswith("MatMul")]
    assert lora and all(n.op_type == "MatMul" for n in lora)  # LoRA stays float32
    ops = {n.name: n.op_type for n in graph.node}
    # base projections + LM head quantised; q, k and v in 8 bits as labkit's default puts a merged export's
    # packed qkv_proj (the builder keeps them apart here), down_proj too; o, gate and up in 4 bits
    assert sum(op == "MatMulNBits" for op in ops.values()) == 2 * 7 + 1
    bits = {re.sub(r"_Q\d+$", "", n.name): a.i for n in graph.node for a in n.attribute if a.name == "bits"}
    assert {bits[f"/model/layers.{i}/{m}/MatMul"] for i in (0, 1) for m in ("attn/q_proj", "attn/k_proj", "attn/v_proj",
                                                                           "mlp/down_proj")} == {8}
    assert {bits[f"/model/layers.{i}/{m}/MatMul"] for i in (0, 1) for m in ("attn/o_proj", "mlp/gate_proj", "mlp/up_proj")} == {4}
    # with the presets alone, the "mixed" layers' (of 2, layer 0) q and k go to 8 bits with their v
    presets = build_base(tiny, "all-linear", precision="int4", out=tmp_path / "presets-int4", int4_options={"int8_nodes": None})
    graph = onnx.load(str(presets / "model.onnx"), load_external_data=False).graph
    bits = {re.sub(r"_Q\d+$", "", n.name): a.i for n in graph.node for a in n.attribute if a.name == "bits"}
    assert {bits[f"/model/layers.0/attn/{p}_proj/MatMul"] for p in "qkv"} == {8}
    assert {bits[f"/model/layers.1/attn/{p}_proj/MatMul"] for p in "qkv"} == {4}
    assert build.folder_size_mb(out / "model.onnx.data") < build.folder_size_mb(multi_fp32 / "model.onnx.data") / 2
    # the same adapter file fits the fp32 and the int4 base (same model, same LoRA inputs)
    check_onnx_adapter(multi_fp32 / "all.onnx_adapter", out)
    # int4 keeps the adapter's effect: its change of the logits follows PyTorch's
    model, tokenizer = peft_model(tiny, peft_dirs["all"])
    m = MultiAdapterModel(out)
    corrs = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        with model.disable_adapter():
            base = torch_logits(model, ids)
        torch_effect = torch_logits(model, ids) - base
        onnx_effect = m.logits(ids, adapter="all") - m.logits(ids, adapter=None)
        corrs.append(np.corrcoef(torch_effect, onnx_effect)[0, 1])
        print(f"int4 {prompt!r}: correlation of the adapter's effect with PyTorch's {corrs[-1]:.3f}")
    # a random tiny model quantises badly (its int4 base alone is off by several logits), so the
    # bar is loose; with 4-bit LoRA weights the effect would be mostly rounding noise
    assert min(corrs) > 0.8 and np.mean(corrs) > 0.85


def test_refuses_adapter_of_another_base(tiny, multi_fp32, tmp_path):
    import shutil

    other_dir = make_tiny_model(tmp_path / "other-llama")
    config = json.loads((other_dir / "config.json").read_text())
    config["hidden_size"], config["intermediate_size"] = 32, 64     # another size ...
    (other_dir / "config.json").write_text(json.dumps(config))
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(5)
    LlamaForCausalLM(LlamaConfig(**config)).save_pretrained(other_dir)
    other_adapter = save_adapter(other_dir, tmp_path / "other-adapter", r=4, target_modules=["q_proj"], seed=3)

    with pytest.raises(AdapterError, match="trained on .*other-llama.*tiny-llama"):
        generate_adapter(tiny, [other_adapter], tmp_path / "never")
    assert not (tmp_path / "never").exists()   # refused before building anything
    with pytest.raises(AdapterError, match="trained on"):
        convert_adapter(other_adapter, multi_fp32, tmp_path / "x.onnx_adapter")

    # a file converted for the other base, copied next to this one: refused when loaded
    other_multi = generate_adapter(other_dir, [other_adapter], tmp_path / "other-multi")
    stray = shutil.copy(other_multi / "other-adapter.onnx_adapter", tmp_path / "stray.onnx_adapter")
    with pytest.raises(AdapterError, match="converted for another base model"):
        check_onnx_adapter(stray, multi_fp32)
    m = MultiAdapterModel(multi_fp32, adapters={})
    with pytest.raises(AdapterError, match="another base model"):
        m.load_adapter("stray", stray)
    assert m.adapters == {}

    # the same architecture under the same name but with other sizes in the file: refused by shape
    write_adapter_file(tmp_path / "sizes.onnx_adapter", adapter_files.read_base(multi_fp32)["base"]["id"], (32, 4), (4, 32))
    with pytest.raises(AdapterError, match="maps 32 -> 32 features but the base's layer maps 64 -> 64"):
        check_onnx_adapter(tmp_path / "sizes.onnx_adapter", multi_fp32)


def test_refuses_targets_the_base_was_not_built_for(tiny, peft_dirs, multi_fp32, tmp_path):
    qv_base = build_base(tiny, ["q_proj", "v_proj"], out=tmp_path / "qv-base")
    assert adapter_files.read_base(qv_base)["target_modules"] == ["q_proj", "v_proj"]
    with pytest.raises(AdapterError, match=r"no LoRA inputs for.*down_proj.*built for \['q_proj', 'v_proj'\]"):
        convert_adapter(peft_dirs["qv"], qv_base)
    # the all-linear file from the other export of the same model: same base id, refused at load
    m = MultiAdapterModel(qv_base)
    with pytest.raises(AdapterError, match="no LoRA inputs for"):
        m.load_adapter("all", multi_fp32 / "all.onnx_adapter")
    # an adapter on a subset of the targets fits, at any rank
    q_only = save_adapter(tiny, tmp_path / "q-only", r=2, target_modules=["q_proj"], seed=4)
    m.load_adapter("q", convert_adapter(q_only, qv_base))
    model, tokenizer = peft_model(tiny, q_only)
    ids = tokenizer(PROMPTS[0])["input_ids"]
    assert np.abs(m.logits(ids, adapter="q") - torch_logits(model, ids)).max() < 1e-4
    # an A/B rank mismatch in a file
    write_adapter_file(tmp_path / "ranks.onnx_adapter", adapter_files.read_base(qv_base)["base"]["id"], (64, 4), (8, 64))
    with pytest.raises(AdapterError, match="lora_A of rank 4 but lora_B of rank 8"):
        m.load_adapter("ranks", tmp_path / "ranks.onnx_adapter")


def test_refuses_corrupt_files_and_unsupported_adapters(tiny, multi_fp32, tmp_path):
    data = (multi_fp32 / "qv.onnx_adapter").read_bytes()
    (tmp_path / "truncated.onnx_adapter").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.onnx_adapter").write_bytes(b"not an adapter at all" * 10)
    for name in ("truncated", "garbage"):
        with pytest.raises(AdapterError, match=f"{name}.onnx_adapter is not a readable .onnx_adapter file"):
            check_onnx_adapter(tmp_path / f"{name}.onnx_adapter", multi_fp32)
    with pytest.raises(FileNotFoundError, match="missing.onnx_adapter"):
        check_onnx_adapter(tmp_path / "missing.onnx_adapter", multi_fp32)
    dora = save_adapter(tiny, tmp_path / "dora", r=4, target_modules=["q_proj"], seed=6, use_dora=True)
    with pytest.raises(AdapterError, match="use_dora"):
        convert_adapter(dora, multi_fp32)
    with pytest.raises(AdapterError, match="not a multi-adapter base"):
        MultiAdapterModel(tmp_path)


def test_base_build_is_cached_and_atomic(tiny, tmp_path, monkeypatch):
    real, calls = build.run_builder, []

    def failing(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(build, "run_builder", failing)
    out = tmp_path / "bases" / "b"
    with pytest.raises(RuntimeError, match="boom"):
        build_base(tiny, ["q_proj"], out=out)
    # nothing half-built left behind (the lock file of labkit.cache stays: it is empty and reused)
    assert [p.name for p in out.parent.iterdir()] in ([], [".b.lock"])
    monkeypatch.setattr(build, "run_builder", lambda *a: (calls.append(a), real(*a)))
    assert build_base(tiny, ["q_proj"], out=out) == out and len(calls) == 1
    (out / "kept.onnx_adapter").write_bytes(b"x")
    assert build_base(tiny, ["q_proj"], out=out) == out and len(calls) == 1   # cached
    assert (out / "kept.onnx_adapter").exists()
    build_base(tiny, ["q_proj", "v_proj"], out=out)                           # other targets: rebuilt
    assert len(calls) == 2 and adapter_files.read_base(out)["target_modules"] == ["q_proj", "v_proj"]
    with pytest.raises(ValueError, match="precision"):
        build_base(tiny, precision="fp16")
    with pytest.raises(ValueError, match="target_modules"):
        build_base(tiny, ["qkv"])


def test_an_adapter_is_refused_on_a_base_of_the_same_name_and_shapes_with_other_weights(tmp_path, tiny_tokenizer):
    # before: "trained on this base" was the folder's name, so another `tiny-llama` with other weights passed
    from transformers import AutoModelForCausalLM

    from conftest import build_model
    from labkit import train
    from labkit.onnx import adapter_files
    from labkit.onnx.adapter_files import AdapterError, check_trained_on
    from labkit.onnx.build import generate_adapter

    folders = {}
    for seed, where in ((0, "a"), (1, "b")):
        folders[where] = tmp_path / where / "tiny-llama"
        build_model(tiny_tokenizer, seed=seed).save_pretrained(folders[where])
        tiny_tokenizer.save_pretrained(folders[where])
    pairs = [{"prompt": f"message {i} ->", "completion": " joy"} for i in range(8)]
    cfg = train.TrainConfig(max_steps=2, batch_size=4, r=4, lora_alpha=8, eval_steps=None, warmup_steps=0)

    def finetune(base, reuse=False):
        model = AutoModelForCausalLM.from_pretrained(folders[base])
        return train.finetune(model, tiny_tokenizer, pairs, None, cfg, output_dir=tmp_path / "run",
                              live_plot=False, verbose=False, reuse=reuse)

    adapter = finetune("a").adapter_dir
    check_trained_on(adapter, folders["a"])
    adapter_files.check_peft_adapter(adapter, str(folders["a"]))
    with pytest.raises(AdapterError, match="other weights"):
        check_trained_on(adapter, folders["b"])
    with pytest.raises(AdapterError, match="other weights"):
        adapter_files.check_peft_adapter(adapter, str(folders["b"]))
    with pytest.raises(AdapterError, match="other weights"):
        generate_adapter(folders["b"], [adapter], tmp_path / "multi")
    assert not (tmp_path / "multi").exists()
    assert not finetune("b", reuse=True).reused     # a finished run on A is not reused for B


def test_chat_on_a_multi_adapter_folder_takes_an_adapter_and_refuses_a_damaged_one(multi_fp32, tmp_path, monkeypatch,
                                                                                   capsys):
    import shutil


    answers = iter(["hello", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert cli.main(["chat", "--model_path", str(multi_fp32), "--adapter", "qv", "--max_new_tokens", "4"]) == 0
    assert "(adapter 'qv')" in capsys.readouterr().out
    for argv, text in (([], "serves 2 adapters: ['all', 'qv']. Pass --adapter NAME"),
                       (["--adapter", "nope"], "--adapter nope: no such adapter")):
        assert cli.main(["chat", "--model_path", str(multi_fp32), *argv]) == 2
        assert text in capsys.readouterr().err
    copy = tmp_path / "multi"
    shutil.copytree(multi_fp32, copy)
    data = (copy / "qv.onnx_adapter").read_bytes()
    (copy / "qv.onnx_adapter").write_bytes(data[: len(data) // 2])      # a damaged file, found when chat starts
    assert cli.main(["chat", "--model_path", str(copy), "--adapter", "all"]) == 2
    assert "qv.onnx_adapter is not a readable .onnx_adapter file" in capsys.readouterr().err


# --- what lesson 07 measures: switch time, a request without the checks, speed and memory per adapter ---

def test_adapter_switch_us_times_set_active_adapter_on_fresh_requests(served):
    times = serve.adapter_switch_us(served, ["qv", "all"], repeats=6)
    assert len(times) == 6 and all(0 < t < 1e6 for t in times)      # microseconds, one per request
    with pytest.raises(KeyError, match="No adapter 'nope'"):
        serve.adapter_switch_us(served, ["qv", "nope"], repeats=2)


def test_a_request_without_the_checks_fails_only_when_it_runs(tiny, peft_dirs, multi_fp32, tmp_path):
    _, tokenizer = load_torch(tiny)
    ids = tokenizer(PROMPTS[0])["input_ids"]
    qv = MultiAdapterModel(build_base(tiny, ["q_proj", "v_proj"], out=tmp_path / "qv-base"))
    with pytest.raises(AdapterError, match="no LoRA inputs for"):             # labkit's check refuses it at load
        qv.load_adapter("all", multi_fp32 / "all.onnx_adapter")
    error = serve.request_without_checks(qv, multi_fp32 / "all.onnx_adapter", ids)   # onnxruntime-genai loads it
    assert error and "Invalid input name" in error, error                         # ... and the request fails
    assert "all" not in qv.adapters and qv.logits(ids, adapter=None).shape       # the model still serves
    assert serve.request_without_checks(MultiAdapterModel(multi_fp32), multi_fp32 / "all.onnx_adapter", ids) is None


def test_genai_speed_with_an_adapter_active(served):
    from labkit.course import timing

    ids = served.token_ids("the cat sat on the mat")
    for adapter in (None, "qv", "all"):
        row = timing.genai_speed(served, ids, new_tokens=6, runs=1, adapter=adapter)
        assert row["TTFT (ms)"] > 0 and row["decode (tok/s)"] > 0, adapter


def test_serving_rss_mb_loads_a_multi_adapter_base_and_merged_exports(tiny, peft_dirs, multi_fp32, tmp_path):
    from labkit.course.memory import serving_rss_mb

    merged = [build.export_onnx(tiny, adapter_dir=folder, precision="fp32", out=tmp_path / name)
              for name, folder in peft_dirs.items()]
    ids = serve.GenAIModel(multi_fp32).token_ids("hello world")
    multi_mb, merged_mb = serving_rss_mb([multi_fp32], ids), serving_rss_mb(merged, ids)
    assert 20 < multi_mb < 5000 and 20 < merged_mb < 5000                  # a Python process with onnxruntime loaded
    with pytest.raises(RuntimeError, match="No genai_config.json"):
        serving_rss_mb([tmp_path / "nowhere"], ids)


@pytest.mark.parametrize("extra", [{"use_rslora": True}, {"alpha_pattern": {"v_proj": 3}, "rank_pattern": {"v_proj": 2}}])
def test_read_peft_adapter_scales_each_module_as_peft_does(tiny, tmp_path, extra):
    # the scaling read from the files equals the one PEFT itself applies when it loads the adapter
    folder = save_adapter(tiny, tmp_path / "a", r=4, target_modules=["q_proj", "v_proj"], seed=8, **extra)
    modules = adapter_files.read_peft_adapter(folder)["modules"]
    live, _ = peft_model(tiny, folder)
    for name, module in live.named_modules():
        short = name.removeprefix("base_model.model.")
        if short in modules:
            assert modules[short]["scaling"] == pytest.approx(module.scaling["default"]), short
            assert modules[short]["A"].shape[0] == module.r["default"]
    assert len(modules) == 2 * 2
