"""labkit.train on a tiny model: loss goes down, runs resume, runs repeat, results are saved."""

import json

import pytest
from transformers import TrainerCallback

from labkit import train
from conftest import TONE_LABELS, build_model

PAIRS = [{"prompt": f"message {i} ->", "completion": f" {TONE_LABELS[i % 5]}"} for i in range(40)]


def tiny_config(**overrides):
    base = dict(max_steps=12, batch_size=8, learning_rate=5e-3, r=4, lora_alpha=8, logging_steps=2,
                eval_steps=None, save_steps=100, warmup_steps=0)
    return train.TrainConfig(**{**base, **overrides})


def run(tiny_tokenizer, tmp_path, name="run", **kw):
    model = build_model(tiny_tokenizer)
    cfg = kw.pop("config", tiny_config())
    return train.finetune(model, tiny_tokenizer, PAIRS, kw.pop("eval_pairs", None), cfg,
                          output_dir=tmp_path / name, live_plot=False, verbose=False, **kw)


def test_lora_lowers_the_training_loss(tiny_tokenizer, tmp_path):
    result = run(tiny_tokenizer, tmp_path, config=tiny_config(max_steps=20))
    losses = [loss for _, loss in result.losses]
    assert losses[-1] < 0.5 * losses[0], losses
    counts = train.count_parameters(result.model)
    assert 0 < counts["trainable"] < counts["total"]


def test_adapter_is_saved_with_config_card_and_run_info(tiny_tokenizer, tmp_path):
    result = run(tiny_tokenizer, tmp_path)
    files = {p.name for p in result.adapter_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "labkit_run.json"} <= files
    info = json.loads((result.adapter_dir / "labkit_run.json").read_text())
    assert info["result"]["steps"] == 12 and info["config"]["r"] == 4
    assert not (result.output_dir / "adapter.partial").exists()


def test_same_seed_same_loss_curve(tiny_tokenizer, tmp_path):
    a = run(tiny_tokenizer, tmp_path, "a").losses
    b = run(tiny_tokenizer, tmp_path, "b").losses
    assert a == b


def test_validation_loss_is_logged(tiny_tokenizer, tmp_path):
    result = run(tiny_tokenizer, tmp_path, eval_pairs=PAIRS[:10], config=tiny_config(eval_steps=4))
    assert [step for step, _ in result.eval_losses] == [4, 8, 12]


class Interrupt(TrainerCallback):
    """Stops the run the way a learner's Ctrl-C (or a closed laptop) would."""

    def __init__(self, at_step):
        self.at_step = at_step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            raise KeyboardInterrupt


class CountSteps(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tiny_tokenizer, tmp_path):
    cfg = tiny_config(save_steps=4)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_tokenizer, tmp_path, "resumable", config=cfg, callbacks=[Interrupt(6)])
    assert train.last_checkpoint(tmp_path / "resumable").endswith("checkpoint-4")
    assert not (tmp_path / "resumable" / "adapter").exists()  # nothing that looks finished

    counter = CountSteps()
    result = run(tiny_tokenizer, tmp_path, "resumable", config=cfg, callbacks=[counter])
    assert counter.steps == [5, 6, 7, 8, 9, 10, 11, 12]  # continued, did not start over
    info = json.loads((result.adapter_dir / "labkit_run.json").read_text())
    assert info["result"]["steps"] == 12


def test_resumed_run_matches_an_uninterrupted_one(tiny_tokenizer, tmp_path):
    cfg = tiny_config(save_steps=4)
    straight = run(tiny_tokenizer, tmp_path, "straight", config=cfg).losses
    with pytest.raises(KeyboardInterrupt):
        run(tiny_tokenizer, tmp_path, "resumed", config=cfg, callbacks=[Interrupt(6)])
    resumed = run(tiny_tokenizer, tmp_path, "resumed", config=cfg).losses
    assert [s for s, _ in resumed] == [s for s, _ in straight]
    assert resumed[-1][1] == pytest.approx(straight[-1][1], rel=1e-4)


def test_a_finished_run_is_reused_only_with_the_same_inputs(tiny_tokenizer, tmp_path):
    first = run(tiny_tokenizer, tmp_path, "cached", reuse=True)
    again = run(tiny_tokenizer, tmp_path, "cached", reuse=True)
    assert not first.reused and again.reused
    changed = run(tiny_tokenizer, tmp_path, "cached", reuse=True, config=tiny_config(learning_rate=1e-3))
    assert not changed.reused


def test_cpu_settings_are_fp32_without_checkpointing(tmp_path):
    args = train.sft_config(tiny_config(), tmp_path, has_eval=False)
    assert not args.bf16 and not args.fp16 and not args.gradient_checkpointing
    assert args.completion_only_loss is True


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="lora"):
        train.TrainConfig(method="dora")


def test_qlora_adapters_stay_fp32_on_cpu():
    # TRL casts a quantised model's trainable weights to bf16; on a CPU labkit casts them back
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)).to(torch.bfloat16)
    model[0].requires_grad_(False)
    train._adapter_dtype_follows_hardware(model)
    assert model[1].weight.dtype == torch.float32      # trainable: back to fp32
    assert model[0].weight.dtype == torch.bfloat16     # frozen: untouched
