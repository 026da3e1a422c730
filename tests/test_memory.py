"""labkit.course.memory: PeakRSS sees memory that a block allocates and frees again; the training-memory estimate."""

import numpy as np
import pytest

from labkit.course.memory import PeakRSS


def test_peak_rss_sees_a_temporary_allocation():
    with PeakRSS(interval=0.01) as mem:
        block = np.ones(200_000_000 // 8)  # 200 MB, touched
        block.sum()
        mem.sample()                           # the peak, read when it is there (no race with a sleep)
        del block
    assert 150 < mem.growth_mb < 400, mem.growth_mb


# --- the full profile on a GPU, without a GPU: what it resolves to, and whether it fits 16 GB ---

def smollm2_config():
    """SmolLM2-135M's architecture as a config (nothing loaded)."""
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                       num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)


def test_memory_estimate_counts_the_models_parameters():
    from labkit import train
    from labkit.train import training_memory_gb

    est = training_memory_gb(smollm2_config(), train.TrainConfig(method="full", dtype="float32"), dev="cpu")
    assert abs(est["weights"] / 4 * 1e9 - 134.5e6) < 0.5e6          # 134.5M parameters, 4 bytes each
    assert abs(est["trainable"] - est["weights"] * 4) < 1e-6          # fp32 weight + grad + 2 AdamW moments
    lora = training_memory_gb(smollm2_config(), train.TrainConfig(r=16, dtype="float32"), dev="cpu")
    assert 4.5e6 < lora["trainable"] / 16 * 1e9 < 5.0e6              # r=16 on every linear layer: 4.9M parameters
    checkpointed = training_memory_gb(smollm2_config(), train.TrainConfig(gradient_checkpointing=True), dev="cpu")
    assert checkpointed["activations"] < lora["activations"] / 5


@pytest.mark.parametrize("bf16", [False, True], ids=["T4", "Ampere"])
def test_full_profile_on_a_16gb_gpu(monkeypatch, bf16):
    import torch

    from labkit import env, train
    from labkit.course import lessons
    from labkit.train import training_memory_gb

    monkeypatch.delenv("LABKIT_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (8, 0) if bf16 else (7, 5))
    monkeypatch.setattr(env, "device", lambda: "cuda")
    assert env.profile() == "full"
    s = env.settings("qlora")
    runs = {"tone": lessons.tone_recipe()[0], "recipes": lessons.recipes_recipe()[0],
            "qlora": train.TrainConfig(method="qlora", r=16, lora_alpha=32, learning_rate=s["learning_rate"],
                                       max_steps=s["max_steps"], batch_size=s["batch_size"]),
            "overfit": train.TrainConfig(r=env.settings("overfit")["r"], batch_size=env.settings("overfit")["batch_size"])}
    for name, cfg in runs.items():
        assert cfg.train_dtype() == (torch.bfloat16 if bf16 else torch.float16), name
        assert cfg.uses_gradient_checkpointing() is True, name
        assert cfg.optimizer() == ("paged_adamw_8bit" if cfg.method == "qlora" else "adamw_torch"), name
        est = training_memory_gb(smollm2_config(), cfg)  # at max_length, the longest sequence allowed
        assert est["total"] < 0.5 * 16, (name, est)  # half a T4's 16 GB: room for workspace and fragmentation
        assert est["weights"] < (0.12 if cfg.method == "qlora" else 0.3), (name, est)  # NF4 Linears + a 16-bit embedding vs 16-bit
