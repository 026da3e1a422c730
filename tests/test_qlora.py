"""QLoRA on a tiny 4-bit Llama: gradients must flow through the 4-bit layers on every CPU.

bitsandbytes 0.50, on a CPU with AVX512-BF16, repacks a ``Linear4bit``'s weights for an
inference-only kernel (``gemv_4bit``, no backward) after an eval-mode forward without
gradients, and keeps using that kernel in training. On such a CPU the tests below failed
before labkit turned the repacking off; on other CPUs bitsandbytes never repacks and they
check the ordinary path.
"""

import pytest
import torch

bnb = pytest.importorskip("bitsandbytes", reason="QLoRA needs the optional bitsandbytes package")

from labkit import models, train  # noqa: E402
from conftest import TONE_LABELS  # noqa: E402

PAIRS = [{"prompt": f"message {i} ->", "completion": f" {TONE_LABELS[i % 5]}"} for i in range(24)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_tokenizer):
    """A tiny Llama whose layers are wide enough for 4-bit blocks of 64 (hidden 64)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = tiny_tokenizer
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         initializer_range=0.2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp("tiny4bit") / "model"
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def load_4bit(folder):
    """A 4-bit model straight from transformers (not through labkit.models.load_base)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        folder, quantization_config=models.quantization_config("nf4", torch.float32),
        device_map={"": "cpu"}, dtype=torch.float32)


def eval_pass(model, tokenizer):
    """What an evaluation does before training (lesson 03's "val loss before")."""
    model.eval()
    with torch.no_grad():
        model(**tokenizer(["message 1 -> joy", "message 2 -> anger"], return_tensors="pt", padding=True))


def lora_gradients(model, tokenizer):
    cfg = train.TrainConfig(method="qlora", r=4, lora_alpha=8)
    torch.manual_seed(0)
    peft_model = train.add_lora(model, cfg)
    for name, p in peft_model.named_parameters():  # B starts at zero: give it values so A gets gradients
        if "lora_B" in name:
            p.data = torch.linspace(-0.1, 0.1, p.numel()).reshape(p.shape)
    peft_model.train()
    batch = tokenizer(["message 1 -> joy", "message 2 -> anger"], return_tensors="pt", padding=True)
    peft_model(**batch, labels=batch["input_ids"]).loss.backward()
    return {n: p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}


def test_qlora_gradients_do_not_change_after_an_eval_pass(folder, tiny_tokenizer):
    fresh = lora_gradients(load_4bit(folder), tiny_tokenizer)
    evaluated_first = load_4bit(folder)
    eval_pass(evaluated_first, tiny_tokenizer)
    after_eval = lora_gradients(evaluated_first, tiny_tokenizer)
    assert fresh.keys() == after_eval.keys() and len(fresh) == 2 * 2 * 7
    for name, g in fresh.items():
        assert g.abs().sum() > 0, name
        # a repacked layer passes no gradient back: the adapters' gradients were then off by ~100%
        # of their size; undoing a repacking costs a little precision (the scales went through bf16)
        assert (after_eval[name] - g).abs().max() < 0.15 * g.abs().max(), name


def test_load_base_4bit_model_keeps_its_gradients(folder, tiny_tokenizer):
    model, tok = models.load_base(folder, quantization="nf4")
    eval_pass(model, tok)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 2 * 7
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    model.train()
    x = torch.randn(2, 5, 64, requires_grad=True)
    layers[0](x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_repacked_layers_are_restored(folder, tiny_tokenizer):
    """A model repacked before labkit saw it gets its training layout back, with the same outputs."""
    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    model = load_4bit(folder)
    layer = model.model.layers[0].mlp.up_proj
    x = torch.randn(3, 64)
    layer.train()  # in eval mode this forward would repack the layer itself (on AVX512-BF16 CPUs)
    with torch.no_grad():
        reference = layer(x)
    layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu(
        layer.weight.data, layer.weight.quant_state)
    assert models.keep_4bit_weights_trainable(model) == 1
    assert not layer.weight.quant_state.packing_format_for_cpu and layer.support_avx512bf16_for_cpu is False
    x.requires_grad_(True)
    out = layer(x)
    out.sum().backward()
    assert x.grad is not None
    assert torch.allclose(out.detach(), reference, atol=0.02 * reference.abs().max())


def test_qlora_training_after_an_eval_pass_matches_training_without(folder, tiny_tokenizer, tmp_path):
    cfg = train.TrainConfig(method="qlora", max_steps=8, batch_size=8, learning_rate=5e-3, r=4, lora_alpha=8,
                            logging_steps=2, eval_steps=None, save_steps=100, warmup_steps=0)
    plain = train.finetune(load_4bit(folder), tiny_tokenizer, PAIRS, None, cfg, output_dir=tmp_path / "a",
                           live_plot=False, verbose=False)
    evaluated_first = load_4bit(folder)
    eval_pass(evaluated_first, tiny_tokenizer)
    after_eval = train.finetune(evaluated_first, tiny_tokenizer, PAIRS, None, cfg, output_dir=tmp_path / "b",
                                live_plot=False, verbose=False)
    a, b = [loss for _, loss in plain.losses], [loss for _, loss in after_eval.losses]
    assert a[-1] < 0.7 * a[0], a   # QLoRA learns
    assert b == pytest.approx(a, rel=0.05), (a, b)


def test_a_qlora_adapter_is_merged_into_the_nf4_weights_it_learned_against(folder, tiny_tokenizer, tmp_path):
    # the merge reproduces the QLoRA model that was trained (PEFT on the 4-bit base); a merge into the
    # unrounded fp32 weights would add the adapter's correction to weights it never saw
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from labkit.onnx.build import merge_adapter, trained_against

    cfg = train.TrainConfig(method="qlora", max_steps=6, batch_size=8, learning_rate=5e-3, r=4, lora_alpha=8,
                            logging_steps=2, eval_steps=None, save_steps=100, warmup_steps=0)
    result = train.finetune(load_4bit(folder), tiny_tokenizer, PAIRS, None, cfg, output_dir=tmp_path / "q",
                            live_plot=False, verbose=False)
    assert trained_against(result.adapter_dir) == "nf4"
    merged = AutoModelForCausalLM.from_pretrained(merge_adapter(folder, result.adapter_dir, tmp_path / "m"))
    # the trained model as labkit runs it (de-quantise, then multiply in fp32): without this, on a CPU with
    # AVX512-BF16 bitsandbytes answers this eval-mode call with its repacked kernel, in bf16 (1e-2 off)
    nf4_base = load_4bit(folder)
    models.keep_4bit_weights_trainable(nf4_base)
    trained = PeftModel.from_pretrained(nf4_base, result.adapter_dir).eval()
    unrounded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), result.adapter_dir)
    ids = tiny_tokenizer(["message 3 -> joy", "message 4 ->"], return_tensors="pt", padding=True)
    with torch.no_grad():
        want, got = trained(**ids).logits, merged.eval()(**ids).logits
        fp32_merge = unrounded.merge_and_unload().eval()(**ids).logits
    assert (got - want).abs().max() < 1e-3 * want.abs().max()
    assert (fp32_merge - want).abs().max() > 10 * (got - want).abs().max()


def quantisation_constants_bytes(model) -> int:
    """The NF4 blocks' scales (8-bit absmax and their fp32 scales), kept outside the parameters."""
    total = 0
    for module in model.modules():
        qs = getattr(getattr(module, "weight", None), "quant_state", None)
        if qs is not None:
            total += qs.absmax.numel() * qs.absmax.element_size()
            total += qs.state2.absmax.numel() * qs.state2.absmax.element_size()
    return total


def test_the_memory_estimate_keeps_the_embedding_unquantised_in_qlora(folder):
    # bitsandbytes quantises the decoder's Linear layers only: the embedding, lm_head and norms stay
    # in the weights dtype, so the estimate must price them there, not at NF4's ~0.52 byte
    from transformers import AutoConfig, LlamaConfig

    from labkit.train import NF4_BYTES_PER_WEIGHT, training_memory_gb

    model = load_4bit(folder)
    measured = model.get_memory_footprint() + quantisation_constants_bytes(model)
    estimate = training_memory_gb(AutoConfig.from_pretrained(folder), train.TrainConfig(method="qlora"), dev="cpu")
    assert estimate["weights"] * 1e9 == pytest.approx(measured, rel=0.02)
    assert NF4_BYTES_PER_WEIGHT == pytest.approx(4.127 / 8, rel=1e-3)
    # SmolLM2-135M: 106.2M Linear weights in NF4 (55 MB) + the fp32 embedding (113 MB), as lesson 03 measures
    smollm2 = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                          num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)
    nf4 = training_memory_gb(smollm2, train.TrainConfig(method="qlora"), dev="cpu")["weights"]
    assert nf4 == pytest.approx(0.168, abs=0.002)
