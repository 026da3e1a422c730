"""Tests for labkit.onnx.build on a tiny random Llama built here (no download, a few seconds)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

og = pytest.importorskip("onnxruntime_genai")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from labkit.onnx import serve  # noqa: E402
from labkit.onnx import build
from labkit.onnx.adapter_files import AdapterError
from labkit.onnx.build import export_onnx, folder_size_mb  # noqa: E402
from labkit.onnx.serve import GenAIModel, parity, sample_from_export, torch_greedy

PROMPTS = ["the cat sat on the mat", "hello world", "what is the capital of france"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def family_config(family: str, **common):
    """A tiny config of another family the onnxruntime-genai builder exports, with the features
    that make it differ: Qwen2's q/k/v biases, Gemma 2's softcapping and pre-attention scalar,
    Phi-3's fused projections, Mistral's sliding window, Granite's multipliers."""
    import transformers as tf

    return {
        "llama": lambda: tf.LlamaConfig(**common),
        "qwen2": lambda: tf.Qwen2Config(**common),
        "gemma2": lambda: tf.Gemma2Config(**common, head_dim=16, final_logit_softcapping=30.0,
                                          attn_logit_softcapping=50.0, query_pre_attn_scalar=16, sliding_window=32),
        "phi3": lambda: tf.Phi3Config(**common, original_max_position_embeddings=common["max_position_embeddings"]),
        "mistral": lambda: tf.MistralConfig(**common, sliding_window=64),
        "granite": lambda: tf.GraniteConfig(**common, logits_scaling=4.0, residual_multiplier=0.5,
                                            embedding_multiplier=2.0, attention_multiplier=0.25),
    }[family]()


def make_tiny_model(path: Path, family: str = "llama") -> Path:
    """Save a tiny random causal LM (Llama unless ``family`` says another, :func:`family_config`)
    + a byte-level BPE tokenizer (trained offline) to ``path``.

    Byte-level BPE is what onnxruntime-genai's tokenizer understands (a WordLevel one fails
    to load). hidden_size 64 is a multiple of the int4 block size (32), so int4 applies to
    every MatMul. initializer_range 0.2 spreads the logits so greedy tokens are not ties.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(PROMPTS * 5 + ["you are a helpful assistant", "the dog is big and the cat is small"], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="</s>", unk_token="<unk>",
        additional_special_tokens=special[3:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(0)
    config = family_config(
        family, vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.2,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )
    AutoModelForCausalLM.from_config(config).float().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def entries(folder):
    """What a folder holds, without labkit.cache's lock files (``.<name>.lock``)."""
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.endswith(".lock"))


def load_torch(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("labkit_home")


@pytest.fixture(scope="module")
def fp32_dir(tiny, home) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_HOME", str(home))
        return export_onnx(tiny, precision="fp32")  # default out under $LABKIT_HOME


def test_fp32_export_matches_pytorch(tiny, home, fp32_dir):
    assert fp32_dir == home / "onnx" / "tiny-llama-fp32"
    for name in ("genai_config.json", "model.onnx", "model.onnx.data", "tokenizer.json", build.EXPORT_MANIFEST):
        assert (fp32_dir / name).is_file(), name
    model, tokenizer = load_torch(tiny)
    report = parity(model, tokenizer, fp32_dir, PROMPTS, max_new_tokens=16)
    assert report["max_abs_diff"] < 1e-3
    assert report["all_greedy_identical"] and report["greedy_match"] == 1.0
    assert all(r["same_tokenizer"] for r in report["prompts"])


OTHER_FAMILIES = [pytest.param(f, marks=pytest.mark.slow) for f in ("qwen2", "gemma2", "phi3", "mistral", "granite")]


@pytest.fixture(scope="module")
def family_folder(tmp_path_factory):
    """A tiny model folder per family, made once and shared by the fp32 and int4 family tests."""
    made = {}

    def folder(family: str) -> Path:
        if family not in made:
            made[family] = make_tiny_model(tmp_path_factory.mktemp(f"tiny-{family}") / "model", family)
        return made[family]

    return folder


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_fp32_export_matches_pytorch_for_other_families(family, family_folder, tmp_path):
    """Every other family the builder exports gives PyTorch's logits and greedy answers (a
    builder that missed Gemma 2's softcapping or Granite's multipliers would differ here)."""
    folder = family_folder(family)
    out = export_onnx(folder, precision="fp32", out=tmp_path / "onnx", verbose=False)
    model, tokenizer = load_torch(folder)
    report = parity(model, tokenizer, out, PROMPTS, max_new_tokens=8)
    assert report["max_abs_diff"] < 1e-3, (family, report["max_abs_diff"])
    assert report["all_greedy_identical"], (family, report)


def test_builder_output_goes_to_a_log_and_one_summary_line(tiny, tmp_path, capfd):
    out = export_onnx(tiny, precision="fp32", out=tmp_path / "quiet")
    printed = capfd.readouterr()
    lines = [line for line in (printed.out + printed.err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Exported fp32 ONNX model to"), lines
    assert (out / "builder.log").stat().st_size > 0  # what the builder printed is kept, not lost


def test_greedy_match_counts_the_shared_prefix_only():
    assert serve.greedy_match([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert serve.greedy_match([1, 2, 3, 4], [1, 9, 3, 4]) == 0.25  # equal again after diverging: not counted
    assert serve.greedy_match([1, 2, 3, 4], [1, 2]) == 0.5
    assert serve.greedy_match([], []) == 0.0


def test_torch_greedy_is_the_argmax_chain_of_full_forward_passes(tiny):
    """model.generate's greedy path (KV cache, its own stopping) against the definition: at each step the
    argmax of a fresh forward pass over the whole sequence, raw logits, stopping at EOS."""
    model, tokenizer = load_torch(tiny)
    prompt = tokenizer("the cat sat")["input_ids"]
    first, tokens = serve.torch_greedy(model, prompt, 6, eos_ids={tokenizer.eos_token_id})
    seq, want = list(prompt), []
    with torch.no_grad():
        for _ in range(6):
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            if not want:
                assert np.allclose(first, logits.numpy(), atol=1e-5)
            want.append(int(logits.argmax()))
            seq.append(want[-1])
            if want[-1] == tokenizer.eos_token_id:
                break
    assert tokens == want


def test_genai_model_runtime(tiny, fp32_dir):
    m = GenAIModel(fp32_dir)
    _, tokenizer = load_torch(tiny)
    assert m.token_ids("the cat sat") == tokenizer("the cat sat")["input_ids"]
    # chat template (read by onnxruntime-genai from chat_template.jinja)
    messages = [{"role": "user", "content": "hello world"}]
    assert m.prompt_text(messages) == "<|user|>hello world<|end|><|assistant|>"
    assert m.prompt_text("hello world", chat=False) == "hello world"
    answer = m.generate(messages, max_new_tokens=8)
    assert isinstance(answer, str)
    assert "".join(m.stream(messages, max_new_tokens=8)) == answer
    assert isinstance(m.generate("hello", max_new_tokens=4, do_sample=True, temperature=0.8, top_p=0.9), str)
    # logits: the default export computes them at the last position only (prune_lm_head)
    ids = m.token_ids("the cat sat on the mat")
    last = m.logits(ids)
    assert last.shape == (300,)
    with pytest.raises(ValueError, match="prune_lm_head=False"):
        m.logits(ids, all_positions=True)


def test_sample_from_export_gives_k_answers_per_prompt_in_order_and_greedy_ones_when_cold(tiny, fp32_dir):
    """Prompts of different lengths go to different batches (no padding) and come back in order; at
    a temperature near 0 every sample is the greedy answer, which the fp32 export shares with PyTorch."""
    model, tokenizer = load_torch(tiny)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    prompts = ["the cat sat", "hello world and many more words", "the cat"]
    cold = sample_from_export(GenAIModel(fp32_dir), tokenizer, prompts, k=3, max_new_tokens=6, temperature=1e-4,
                              batch_size=2)
    for prompt, answers in zip(prompts, cold["completions"]):
        greedy = torch_greedy(model, tokenizer(prompt)["input_ids"], 6, eos)[1]
        assert answers == [tokenizer.decode(greedy, skip_special_tokens=True)] * 3, (prompt, answers)
    assert 0 < cold["new_tokens"] <= 3 * 3 * 6 and cold["seconds"] > 0
    warm = sample_from_export(GenAIModel(fp32_dir), tokenizer, prompts, k=4, max_new_tokens=6, temperature=1.0)
    assert any(len(set(answers)) > 1 for answers in warm["completions"])   # sampled, not greedy


def test_an_unpruned_export_gives_every_positions_logits_equal_to_the_pruned_last(tiny, fp32_dir, tmp_path):
    full = GenAIModel(export_onnx(tiny, precision="fp32", out=tmp_path / "full", prune_lm_head=False))
    pruned = GenAIModel(fp32_dir)
    ids = pruned.token_ids("the cat sat on the mat")
    every = full.logits(ids, all_positions=True)
    assert every.shape == (len(ids), 300)
    assert abs(every[-1] - pruned.logits(ids)).max() < 1e-5


def test_session_config_sets_the_cpu_threads(fp32_dir):
    import json

    from labkit.env import cpu_cores
    from labkit.onnx.serve import session_config

    assert cpu_cores() >= 1
    session_config(fp32_dir, threads=1)  # loads; the export's own genai_config.json is untouched
    assert "intra_op_num_threads" not in json.dumps(json.loads((fp32_dir / "genai_config.json").read_text()))


def test_int4_export(tiny, fp32_dir, tmp_path):
    import onnx

    out = export_onnx(tiny, precision="int4", out=tmp_path / "int4")
    graph = onnx.load(str(out / "model.onnx"), load_external_data=False).graph
    quantised = [n for n in graph.node if n.op_type == "MatMulNBits"]
    # 2 layers x (qkv, o, gate, up, down) in int4 + the LM head in int8
    assert len(quantised) == 11
    assert {a.i for n in quantised for a in n.attribute if a.name == "bits"} == {4, 8}
    assert folder_size_mb(out) < folder_size_mb(fp32_dir) / 2

    model, tokenizer = load_torch(tiny)
    report = parity(model, tokenizer, out, PROMPTS, max_new_tokens=16)
    for row in report["prompts"]:
        print(f"int4 {row['prompt']!r}: torch {row['torch_tokens']} onnx {row['onnx_tokens']}")
    print(f"int4: max |dlogit| {report['max_abs_diff']:.3f}, greedy match {report['greedy_match']:.0%}")
    assert 0 < report["max_abs_diff"] < 10 and 0 <= report["greedy_match"] <= 1
    assert isinstance(GenAIModel(out).generate("hello", max_new_tokens=4), str)


def matmul_bits(folder) -> dict:
    """Bits of every quantised node of an export, by node name without the builder's _Q4/_Q8 suffix
    ("/model/layers.0/mlp/down_proj/MatMul": 8)."""
    import re

    import onnx

    graph = onnx.load(str(Path(folder) / "model.onnx"), load_external_data=False).graph
    return {re.sub(r"_Q\d+$", "", n.name): a.i for n in graph.node for a in n.attribute if a.name == "bits"}


def test_named_int8_overrides_keep_the_flat_options_order():
    options = {"block_size": 32, "nodes_to_exclude": "/lm_head/MatMul", "int8_nodes": "/model/layers.*/mlp/down_proj/MatMul",
               "matmul_mixed_precision": "last_matmul:int8,mixed_layers:int8"}
    flat, target = build.named_int8_overrides(options, {"num_hidden_layers": 2, "tie_word_embeddings": True})
    assert flat == {"block_size": 32}
    assert target["quant_config"]["weights"] == {"op_types": ["MatMul", "Gather"], "overrides": [
        {"match": {"name": "/lm_head/MatMul"}, "exclude": True},        # kept in float: first match wins
        {"match": {"name": "/model/layers.0/mlp/down_proj/MatMul"}, "type": "int8"},
        {"match": {"name": "/model/layers.1/mlp/down_proj/MatMul"}, "type": "int8"},
        {"match": {"preset": "last_matmul"}, "type": "int8"},
        {"match": {"preset": "mixed_layers"}, "type": "int8"}]}
    # no node named: the flat options go to the builder as they are
    assert build.named_int8_overrides({"block_size": 32}, {}) == ({"block_size": 32}, None)


def test_int4_export_with_named_int8_nodes(tiny, tmp_path):
    out = export_onnx(tiny, precision="int4", out=tmp_path / "int8-up",
                      int4_options={"int8_nodes": "/model/layers.*/mlp/up_proj/MatMul"})
    bits = matmul_bits(out)
    presets = matmul_bits(export_onnx(tiny, precision="int4", out=tmp_path / "presets", int4_options={"int8_nodes": None}))
    # every up_proj in 8 bits (the names replace labkit's default ones); everything else as the presets alone have it
    assert bits == {k: 8 if "/up_proj/" in k else v for k, v in presets.items()}
    assert {bits["/model/layers.0/mlp/up_proj/MatMul"], bits["/model/layers.1/mlp/up_proj/MatMul"]} == {8}
    assert presets["/model/layers.1/mlp/up_proj/MatMul"] == 4
    # the tied embedding table is still the LM head's 8-bit copy, not a float table
    assert bits["/model/embed_tokens/GatherBlockQuantized"] == 8
    assert isinstance(GenAIModel(out).generate("hello", max_new_tokens=4), str)
    # a node the model does not have: the builder's own message, naming it
    with pytest.raises(RuntimeError, match="did not match an emitted node: /model/layers.9/mlp/down_proj/MatMul"):
        export_onnx(tiny, precision="int4", out=tmp_path / "bad", int4_options={"int8_nodes": "/model/layers.9/mlp/down_proj/MatMul"})


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_int4_defaults_name_8_bit_nodes_every_family_has(family, family_folder, tmp_path):
    """labkit's default 8-bit nodes (q, k, v and down_proj of every layer) are builder names of every
    family it exports: a name the model lacks would fail the build."""
    folder = family_folder(family)
    bits = matmul_bits(export_onnx(folder, precision="int4", out=tmp_path / f"{family}-int4"))
    assert all(bits[f"/model/layers.{i}/{m}/MatMul"] == 8 for i in range(2) for m in ("attn/qkv_proj", "mlp/down_proj"))
    assert bits["/model/layers.0/attn/o_proj/MatMul"] == 4


def test_adapter_is_merged(tiny, fp32_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_torch(tiny)
    torch.manual_seed(1)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    peft_model.save_pretrained(tmp_path / "adapter")
    peft_model.eval()

    out = export_onnx(tiny, adapter_dir=tmp_path / "adapter", precision="fp32", out=tmp_path / "merged")
    report = parity(peft_model, tokenizer, out, PROMPTS, max_new_tokens=16)
    assert report["max_abs_diff"] < 1e-3 and report["all_greedy_identical"]
    ids = tokenizer(PROMPTS[0])["input_ids"]  # the adapter changes the outputs
    assert abs(GenAIModel(out).logits(ids) - GenAIModel(fp32_dir).logits(ids)).max() > 1e-2


def test_default_export_dir_names_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    base = tmp_path / "SmolLM2"
    assert build.default_export_dir(base) == tmp_path / "onnx" / "SmolLM2-int4"
    assert build.default_export_dir(base, tmp_path / "my-lora", "fp32") == tmp_path / "onnx" / "SmolLM2-my-lora-fp32"
    # labkit.train saves every run as <run>/adapter: two runs must not share an export folder
    a = build.default_export_dir(base, tmp_path / "runs" / "lora-aaaa" / "adapter")
    b = build.default_export_dir(base, tmp_path / "runs" / "lora-bbbb" / "adapter")
    assert a == tmp_path / "onnx" / "SmolLM2-lora-aaaa-int4" and a != b


def test_atomic_and_cached(tiny, tmp_path, monkeypatch):
    out = tmp_path / "exports" / "tiny-fp32"
    real_builder, calls = build.run_builder, []

    def failing_builder(input_dir, output_dir, *args):
        output_dir.mkdir(parents=True)
        (output_dir / "model.onnx").write_text("half written")
        raise RuntimeError("boom")

    monkeypatch.setattr(build, "run_builder", failing_builder)
    with pytest.raises(RuntimeError, match="boom"):
        export_onnx(tiny, precision="fp32", out=out)
    assert not out.exists()
    assert entries(out.parent) == []  # no temporary folder left behind

    def counting_builder(*args):
        calls.append(args)
        real_builder(*args)

    monkeypatch.setattr(build, "run_builder", counting_builder)
    assert export_onnx(tiny, precision="fp32", out=out) == out and len(calls) == 1
    stamp = (out / "model.onnx").stat().st_mtime_ns
    assert export_onnx(tiny, precision="fp32", out=out) == out and len(calls) == 1  # reused
    assert (out / "model.onnx").stat().st_mtime_ns == stamp
    export_onnx(tiny, precision="fp32", out=out, force=True)
    assert len(calls) == 2

    # a manifest that does not match (e.g. the model was re-saved) -> rebuild and replace
    manifest = json.loads((out / build.EXPORT_MANIFEST).read_text())
    manifest["model_files"]["config.json"][1] += 1
    (out / build.EXPORT_MANIFEST).write_text(json.dumps(manifest))
    export_onnx(tiny, precision="fp32", out=out)
    assert len(calls) == 3 and json.loads((out / build.EXPORT_MANIFEST).read_text())["model_files"] != manifest["model_files"]

    # a failed rebuild leaves the previous export in place
    monkeypatch.setattr(build, "run_builder", failing_builder)
    with pytest.raises(RuntimeError):
        export_onnx(tiny, precision="fp32", out=out, force=True)
    assert (out / "genai_config.json").is_file() and entries(out.parent) == [out.name]


def test_bad_inputs(tiny, tmp_path, monkeypatch):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        export_onnx(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*config.json"):
        export_onnx(tmp_path / "empty")
    with pytest.raises(AdapterError, match="no-such-adapter.*no such folder"):
        export_onnx(tiny, adapter_dir=tmp_path / "no-such-adapter")
    with pytest.raises(ValueError, match="precision"):
        export_onnx(tiny, precision="int3")
    with pytest.raises(ValueError, match="fp16"):
        export_onnx(tiny, precision="fp16", device="cpu")
    with pytest.raises(ValueError, match="block_size"):
        export_onnx(tiny, precision="int4", int4_options={"block_size": 128})
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("not an export")
    with pytest.raises(FileExistsError):
        export_onnx(tiny, precision="fp32", out=tmp_path / "precious")
    assert (tmp_path / "precious" / "notes.txt").is_file()

    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)  # simulate "not installed"
    with pytest.raises(ImportError, match="pip install onnxruntime-genai onnx-ir onnxscript"):
        export_onnx(tiny)


def test_decode_speed_of_a_sliding_window_export(tmp_path):
    """timing.genai_speed sizes the KV cache for a local-attention window too (Gemma 2)."""
    from labkit.course import timing

    folder = make_tiny_model(tmp_path / "tiny-gemma2", "gemma2")
    model = GenAIModel(export_onnx(folder, precision="fp32", out=tmp_path / "onnx", verbose=False))
    assert model.min_cache == 32
    row = timing.genai_speed(model, [5, 6, 7], new_tokens=4, runs=1)
    assert row["decode (tok/s)"] > 0
