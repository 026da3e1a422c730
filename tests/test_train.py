"""labkit.train on a tiny model: loss goes down, runs resume, runs repeat, results are saved."""

import json

import pytest
import torch
from transformers import TrainerCallback

from labkit import train
from conftest import FAMILIES, TONE_LABELS, build_family_model, build_model, build_tokenizer

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


def test_cpu_settings_are_fp32_without_checkpointing(tmp_path, monkeypatch):
    import torch

    from labkit import env

    monkeypatch.setattr(env, "device", lambda: "cpu")  # the CPU rule, on any machine
    args = train.sft_config(tiny_config(), tmp_path, has_eval=False)
    assert not args.bf16 and not args.fp16 and not args.gradient_checkpointing
    assert args.completion_only_loss is True
    assert train.training_attention(torch.float32) is None
    assert train.training_attention(torch.bfloat16) == "eager"  # bf16 chosen on a CPU
    assert train.trainer_class(tiny_config()).__name__ == "AnswerOnlySFTTrainer"
    assert train.trainer_class(tiny_config(answer_only_logits=False)).__name__ == "SFTTrainer"


def test_sft_config_uses_the_current_checkpointing_argument(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # `gradient_checkpointing` is deprecated in transformers 5
        train.sft_config(tiny_config(), tmp_path, has_eval=False)


def test_each_method_has_its_own_default_learning_rate():
    assert train.TrainConfig().learning_rate == 1e-3
    assert train.TrainConfig(method="full").learning_rate == 5e-5
    assert train.TrainConfig(method="full", learning_rate=1e-4).learning_rate == 1e-4


def test_a_full_fine_tune_of_bf16_weights_trains_an_fp32_copy(tiny_tokenizer, tmp_path):
    # updating bf16 weights in place, with no fp32 master copy, rounds small updates away
    import torch

    model = build_model(tiny_tokenizer).to(torch.bfloat16)
    result = train.finetune(model, tiny_tokenizer, PAIRS, None, tiny_config(method="full", max_steps=2),
                            output_dir=tmp_path / "full", live_plot=False, verbose=False)
    assert {p.dtype for p in result.model.parameters()} == {torch.float32}
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}   # the caller's model is untouched


def test_finetune_refuses_examples_longer_than_max_length(tiny_tokenizer, tmp_path):
    # TRL keeps the start of an over-long example: the answer would be cut off and never learned
    from labkit.data import DataError

    long = [{"prompt": "message " + "very " * 80 + "->", "completion": " happy"}] + PAIRS
    with pytest.raises(DataError, match="example #0: .* longer than max_length=64"):
        train.finetune(build_model(tiny_tokenizer), tiny_tokenizer, long, None, tiny_config(max_length=64),
                       output_dir=tmp_path / "long", live_plot=False, verbose=False)
    with pytest.raises(DataError, match="longer than max_length=64"):
        train.finetune(build_model(tiny_tokenizer), tiny_tokenizer, PAIRS, long[:1], tiny_config(max_length=64),
                       output_dir=tmp_path / "long-eval", live_plot=False, verbose=False)
    assert not (tmp_path / "long").exists()   # refused before anything was written


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="lora"):
        train.TrainConfig(method="dora")


def test_qlora_adapters_stay_fp32_on_cpu():
    # TRL casts a quantised model's trainable weights to bf16; where training is fp32 labkit casts them back
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)).to(torch.bfloat16)
    model[0].requires_grad_(False)
    train._adapter_dtype_follows_hardware(model, torch.float32)
    assert model[1].weight.dtype == torch.float32      # trainable: back to fp32
    assert model[0].weight.dtype == torch.bfloat16     # frozen: untouched


def test_config_overrides_the_hardware_rule_only_when_set():
    import torch

    from labkit import env

    default = train.TrainConfig()
    assert default.train_dtype("cpu") == env.train_dtype("cpu") == torch.float32
    assert default.uses_gradient_checkpointing("cpu") is env.use_gradient_checkpointing("cpu") is False
    chosen = train.TrainConfig(dtype="bfloat16", gradient_checkpointing=True, eval_batch_size=3,
                               modules_to_save=["lm_head"])
    assert chosen.train_dtype("cpu") == torch.bfloat16 and chosen.uses_gradient_checkpointing("cpu")
    args = train.sft_config(chosen, "/tmp/x", has_eval=True)
    assert args.bf16 and args.activation_checkpointing and args.per_device_eval_batch_size == 3
    assert train.lora_config(chosen).modules_to_save == ["lm_head"]
    with pytest.raises(ValueError, match="dtype='fp8'"):
        train.TrainConfig(dtype="fp8")


# --- resume only the same run; skip half-written checkpoints; early stopping; no mutation ------

def test_a_changed_run_does_not_resume_the_old_checkpoint(tiny_tokenizer, tmp_path):
    # the bug: a re-run with a new learning rate resumed the old run's checkpoint at max_steps,
    # trained 0 steps and stamped the old weights with the new fingerprint
    run(tiny_tokenizer, tmp_path, "shared", config=tiny_config(save_steps=4))
    counter = CountSteps()
    changed = run(tiny_tokenizer, tmp_path, "shared", config=tiny_config(save_steps=4, learning_rate=1e-3),
                  callbacks=[counter], reuse=True)
    assert not changed.reused
    assert counter.steps == list(range(1, 13))  # all 12 steps trained afresh
    again = run(tiny_tokenizer, tmp_path, "shared", config=tiny_config(save_steps=4, learning_rate=1e-3),
                reuse=True)
    assert again.reused and again.steps == 12


def test_last_checkpoint_skips_an_interrupted_save(tiny_tokenizer, tmp_path):
    cfg = tiny_config(save_steps=4)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_tokenizer, tmp_path, "half", config=cfg, callbacks=[Interrupt(10)])
    out = tmp_path / "half"
    assert train.last_checkpoint(out).endswith("checkpoint-8")
    (out / "checkpoint-8" / "trainer_state.json").unlink()   # as if killed while saving step 8
    assert train.last_checkpoint(out).endswith("checkpoint-4")
    counter = CountSteps()
    run(tiny_tokenizer, tmp_path, "half", config=cfg, callbacks=[counter])
    assert counter.steps[0] == 5


def test_early_stopping_stops_early_and_restores_the_best_checkpoint(tiny_tokenizer, tmp_path):
    # a learning rate this high overfits 8 pairs fast: validation loss turns up, patience runs out
    train_pairs = PAIRS[:8]
    val = [{"prompt": f"other {i} ->", "completion": f" {TONE_LABELS[(i + 2) % 5]}"} for i in range(10)]
    cfg = tiny_config(max_steps=60, eval_steps=2, save_steps=25, learning_rate=3e-2, early_stopping_patience=2)
    result = train.finetune(build_model(tiny_tokenizer), tiny_tokenizer, train_pairs, val, cfg,
                            output_dir=tmp_path / "es", live_plot=False, verbose=False)
    evals = result.eval_losses
    best_step, best = min(evals, key=lambda e: e[1])
    assert result.steps < 60                       # stopped before the last step
    assert result.best_step == best_step           # and restored the best evaluation's checkpoint
    info = json.loads((result.adapter_dir / "labkit_run.json").read_text())
    assert info["result"]["restored_checkpoint"] == f"checkpoint-{best_step}"
    # the saved adapter holds the best step's weights, not the last step's
    from safetensors.torch import load_file
    import torch

    saved = load_file(result.adapter_dir / "adapter_model.safetensors")
    best_ckpt = load_file(result.output_dir / f"checkpoint-{best_step}" / "adapter_model.safetensors")
    assert saved.keys() == best_ckpt.keys()
    assert all(torch.equal(saved[k], best_ckpt[k]) for k in saved)
    last = result.output_dir / f"checkpoint-{result.steps}" / "adapter_model.safetensors"
    if result.steps != best_step and last.is_file():
        assert not all(torch.equal(saved[k], v) for k, v in load_file(last).items())


def test_restore_best_works_with_default_eval_and_save_steps(tmp_path):
    # transformers refuses load_best_model_at_end unless saves fall on evaluations (10 vs 25)
    args = train.sft_config(train.TrainConfig(early_stopping_patience=3), tmp_path, has_eval=True)
    assert args.load_best_model_at_end and args.save_steps % args.eval_steps == 0


def test_early_stopping_without_validation_is_a_clear_error(tiny_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="validation"):
        run(tiny_tokenizer, tmp_path, config=tiny_config(early_stopping_patience=2))


def test_finetune_leaves_the_callers_model_untouched(tiny_tokenizer, tmp_path):
    import torch

    model = build_model(tiny_tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = train.finetune(model, tiny_tokenizer, PAIRS, None, tiny_config(), output_dir=tmp_path / "a",
                           live_plot=False, verbose=False)
    assert not hasattr(model, "peft_config") and set(model.state_dict()) == set(before)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # a second call (a re-run cell) trains a fresh adapter, not the first one again
    second = train.finetune(model, tiny_tokenizer, PAIRS, None, tiny_config(), output_dir=tmp_path / "b",
                            live_plot=False, verbose=False)
    assert second.model is not first.model and second.losses == first.losses


def test_tensorboard_logs_are_written(tiny_tokenizer, tmp_path):
    pytest.importorskip("tensorboard")  # a declared dependency; this guards only odd installs
    cfg = tiny_config(report_to="tensorboard", logging_dir=str(tmp_path / "tb"))
    run(tiny_tokenizer, tmp_path, config=cfg)
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_validation_accuracy_is_logged_next_to_the_validation_loss(tiny_tokenizer, tmp_path):
    val = PAIRS[:10]
    callback = train.ValidationAccuracy(tiny_tokenizer, [p["prompt"] for p in val],
                                        [p["completion"].strip() for p in val], TONE_LABELS)
    result = run(tiny_tokenizer, tmp_path, eval_pairs=val, config=tiny_config(eval_steps=6),
                 callbacks=[callback])
    evals = [h for h in result.history if "eval_loss" in h]
    assert [h["step"] for h in evals] == [6, 12]
    assert all(0 <= h["eval_accuracy"] <= 1 and 0 <= h["eval_macro_f1"] <= 1 for h in evals)
    assert evals[-1]["eval_accuracy"] >= 0.4     # 12 steps on these pairs learn most of them


def test_seconds_per_step_times_the_real_run_and_changes_nothing(tiny_tokenizer, tmp_path):
    model = build_model(tiny_tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seconds = train.seconds_per_step(model, tiny_tokenizer, PAIRS, tiny_config(), steps=2)
    assert 0 < seconds < 30
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not hasattr(model, "peft_config")       # the LoRA layers went on a copy


def test_early_stopping_on_validation_accuracy(tiny_tokenizer, tmp_path):
    val = PAIRS[:10]
    callback = train.ValidationAccuracy(tiny_tokenizer, [p["prompt"] for p in val],
                                        [p["completion"].strip() for p in val], TONE_LABELS)
    cfg = tiny_config(max_steps=24, eval_steps=4, early_stopping_patience=2, metric_for_best_model="eval_accuracy")
    result = run(tiny_tokenizer, tmp_path, eval_pairs=val, config=cfg, callbacks=[callback])
    evals = [h for h in result.history if "eval_accuracy" in h]
    best = max(evals, key=lambda h: h["eval_accuracy"])        # first of the best: ties keep the earlier one
    assert result.best_step == best["step"]


# --- the output layer on the answer tokens only (labkit.train) ---------------------------

def test_answer_only_loss_equals_trls_loss_and_gradients(tiny_tokenizer, tmp_path):
    # the same batch through TRL's loss (every position scored) and labkit's (answer tokens only):
    # equal loss, equal LoRA gradients
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    from labkit.train import AnswerOnlySFTTrainer

    cfg = tiny_config(dtype="float32")
    losses, grads = {}, {}
    for cls in (SFTTrainer, AnswerOnlySFTTrainer):
        torch.manual_seed(0)
        model = train.add_lora(build_model(tiny_tokenizer), cfg)
        for name, p in model.named_parameters():  # LoRA B starts at zero: give it values
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)
        trainer = cls(model=model, args=train.sft_config(cfg, tmp_path / cls.__name__, has_eval=False),
                      processing_class=tiny_tokenizer, train_dataset=Dataset.from_list(PAIRS))
        batch = next(iter(trainer.get_train_dataloader()))
        model.train()
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        losses[cls.__name__] = loss.item()
        grads[cls.__name__] = torch.cat([p.grad.flatten() for n, p in model.named_parameters() if p.requires_grad])
        assert (batch["labels"][:, 1:] != -100).sum() < batch["attention_mask"].sum() / 2  # mostly prompt
    assert losses["SFTTrainer"] == pytest.approx(losses["AnswerOnlySFTTrainer"], rel=1e-5)
    assert torch.allclose(grads["SFTTrainer"], grads["AnswerOnlySFTTrainer"], rtol=1e-4, atol=1e-6)


def test_a_training_step_gives_the_same_loss_with_the_output_layer_on_answers_only(tiny_tokenizer):
    # lesson 02 times these two functions against each other: they must do the same work's worth
    import torch

    from labkit.course.lessons import training_step
    from labkit.evaluate import completion_loss

    model = train.add_lora(build_model(tiny_tokenizer), tiny_config())
    for name, p in model.named_parameters():  # LoRA B starts at zero: give it values
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    every, answers = (training_step(model, tiny_tokenizer, PAIRS[:8], answer_only=a) for a in (False, True))
    loss = every()
    assert answers() == pytest.approx(loss, rel=1e-5) and answers() == pytest.approx(loss, rel=1e-5)  # repeatable
    assert all(p.grad is None for p in model.parameters())          # cleared after each call
    assert loss == pytest.approx(completion_loss(model, tiny_tokenizer, PAIRS[:8]), rel=1e-4)  # the same tokens


def test_answer_logits_leave_generation_unchanged(tiny_tokenizer):
    import torch

    from labkit.train import add_answer_logits

    model = build_model(tiny_tokenizer)
    ids = tiny_tokenizer(["message 3 ->"], return_tensors="pt").input_ids
    before = model(ids).logits
    add_answer_logits(model)
    assert torch.equal(model(ids).logits, before)
    labels = torch.full_like(ids, -100)
    labels[0, -1] = ids[0, -1]
    out = model(input_ids=ids, labels=labels, answer_logits=True)
    assert out.logits.shape == (1, model.config.vocab_size)
    assert torch.allclose(out.logits, before[0, -2].float(), atol=1e-5)


def test_bf16_training_on_the_cpu_lowers_the_loss(tiny_tokenizer, tmp_path):
    # bf16 chosen on a CPU: bf16 autocast, eager attention, answer-only logits
    result = run(tiny_tokenizer, tmp_path, config=tiny_config(max_steps=20, dtype="bfloat16"))
    losses = [loss for _, loss in result.losses]
    assert losses[-1] < 0.5 * losses[0], losses


def test_a_base_stored_in_bf16_trains_fp32_lora_weights_on_answer_only_logits(tiny_tokenizer, tmp_path):
    # bench/bf16_vs_fp32.py's "stored" arm: the frozen decoder in bf16, the embedding/output layer,
    # LoRA weights and loss in fp32; the answer-only probe runs under the run's autocast
    import torch

    from labkit.models import store_decoder_in_bf16

    model = store_decoder_in_bf16(build_model(tiny_tokenizer))
    layer = model.model.layers[0].self_attn.q_proj
    assert layer.weight.dtype == torch.bfloat16 and model.lm_head.weight.dtype == torch.float32
    result = train.finetune(model, tiny_tokenizer, PAIRS, None, tiny_config(max_steps=20, dtype="bfloat16"),
                            output_dir=tmp_path / "stored", live_plot=False, verbose=False)
    trainable = {p.dtype for p in result.model.parameters() if p.requires_grad}
    assert trainable == {torch.float32}
    losses = [loss for _, loss in result.losses]
    assert losses[-1] < 0.5 * losses[0], losses
    assert layer.weight.dtype == torch.bfloat16      # the caller's model is untouched (finetune trains a copy)


def test_the_answer_only_probe_under_bf16_autocast_still_catches_a_rescaled_output(tiny_tokenizer):
    # MIXED_PRECISION_ATOL lets bf16 rounding through, not a model's own logit post-processing
    import torch

    from labkit.models import store_decoder_in_bf16
    from labkit.train import MIXED_PRECISION_ATOL, add_answer_logits, answer_logits_match

    model = store_decoder_in_bf16(build_model(tiny_tokenizer))
    add_answer_logits(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert answer_logits_match(model, atol=MIXED_PRECISION_ATOL)
        model.config.logits_scaling = 0.5  # labkit divides by it (Granite's rule); Llama's own forward does not
        assert not answer_logits_match(model, atol=MIXED_PRECISION_ATOL)


# --- other model families: the answer-only loss is each model's own objective --------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_answer_logits_equal_the_models_own_logits_in_every_family(family, tiny_tokenizer):
    import torch

    from labkit.train import add_answer_logits, answer_logits_match

    model = build_family_model(family, tiny_tokenizer)
    ids = tiny_tokenizer(["message 3 -> joy"], return_tensors="pt").input_ids
    full = model(ids).logits[0].float()
    add_answer_logits(model)
    labels = ids.clone()
    labels[0, :3] = -100
    out = model(input_ids=ids, labels=labels, answer_logits=True)
    # softcapping (gemma2), logits scaling (granite) and logit scale (cohere) applied as the model applies them
    assert torch.allclose(out.logits, full[2:-1], atol=1e-5), family
    assert answer_logits_match(model)


def test_a_model_with_unknown_logit_postprocessing_trains_on_its_own_logits(tiny_tokenizer, tmp_path, capsys):
    import torch
    import torch.nn.functional as F
    from datasets import Dataset
    from transformers import LlamaForCausalLM

    from labkit.train import AnswerOnlySFTTrainer

    class Doubled(LlamaForCausalLM):  # a family that rescales its logits in a way labkit does not know
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            out.logits = out.logits * 2
            return out

    cfg = tiny_config(dtype="float32")
    model = train.add_lora(Doubled(build_model(tiny_tokenizer).config).eval(), cfg)
    trainer = AnswerOnlySFTTrainer(model=model, args=train.sft_config(cfg, tmp_path / "d", has_eval=False),
                                   processing_class=tiny_tokenizer, train_dataset=Dataset.from_list(PAIRS))
    assert not trainer.answer_only and "own full logits" in capsys.readouterr().out
    batch = dict(next(iter(trainer.get_train_dataloader())))
    loss = trainer.compute_loss(model, batch)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # doubled
    expected = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=-100)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    result = train.finetune(Doubled(build_model(tiny_tokenizer).config).eval(), tiny_tokenizer, PAIRS, None,
                            tiny_config(max_steps=4), output_dir=tmp_path / "r", live_plot=False, verbose=False)
    assert len(result.losses) == 2 and all(torch.isfinite(torch.tensor(l)) for _, l in result.losses)


def test_a_deep_copy_of_a_patched_model_runs_with_its_own_weights(tiny_tokenizer):
    import copy

    import torch

    from labkit.train import add_answer_logits

    model = build_model(tiny_tokenizer)
    add_answer_logits(model)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
    ids = tiny_tokenizer(["message 3 ->"], return_tensors="pt").input_ids
    assert not torch.allclose(twin(ids).logits, model(ids).logits)   # before the fix: the original's weights
    assert torch.allclose(twin(ids).logits, type(twin).forward(twin, ids).logits)


@pytest.mark.parametrize("accumulation", [1, 4])
@pytest.mark.parametrize("family", ["llama", "no-loss-kwargs"] +
                         [pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES if f != "llama"])
def test_answer_only_training_step_equals_trls_under_gradient_accumulation(family, accumulation, tiny_tokenizer,
                                                                           tmp_path):
    # num_items_in_batch (the answer tokens of all accumulated batches) must divide the loss as TRL does:
    # plain SGD (AdamW's first step would hide a wrong scale), one optimizer step, same weights after it.
    # In every family; "no-loss-kwargs" is a model whose forward takes no num_items_in_batch (Trainer then
    # averages per batch and divides by the accumulation steps itself)
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    from labkit.train import AnswerOnlySFTTrainer

    cfg = tiny_config(dtype="float32", optim="sgd", learning_rate=0.5, batch_size=2, group_by_length=False,
                      gradient_accumulation_steps=accumulation, max_steps=1, warmup_steps=0, logging_steps=1)
    weights, losses = {}, {}
    for cls in (SFTTrainer, AnswerOnlySFTTrainer):
        torch.manual_seed(0)
        base = build_model(tiny_tokenizer) if family == "no-loss-kwargs" else build_family_model(family, tiny_tokenizer)
        model = train.add_lora(base, cfg)
        for name, p in model.named_parameters():  # LoRA B starts at zero: give it values so A gets gradients too
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)
        # prompts of different lengths: a per-batch mean would weigh tokens differently from TRL's
        pairs = [{"prompt": "message " + "very " * (i % 5) + f"{i} ->", "completion": f" {TONE_LABELS[i % 5]} and {i}"}
                 for i in range(16)]
        trainer = cls(model=model, args=train.sft_config(cfg, tmp_path / cls.__name__, has_eval=False),
                      processing_class=tiny_tokenizer, train_dataset=Dataset.from_list(pairs))
        if family == "no-loss-kwargs":
            trainer.model_accepts_loss_kwargs = False
        trainer.train()
        weights[cls.__name__] = torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad])
        losses[cls.__name__] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses["SFTTrainer"] == pytest.approx(losses["AnswerOnlySFTTrainer"], rel=1e-4)
    assert torch.allclose(weights["SFTTrainer"], weights["AnswerOnlySFTTrainer"], rtol=1e-4, atol=1e-6)


def test_the_fingerprint_covers_everything_that_changes_a_run(tiny_tokenizer, monkeypatch):
    import importlib.metadata

    cfg = tiny_config()
    fp = train.fingerprint(cfg, PAIRS, "m", PAIRS[:4], tiny_tokenizer)
    assert fp == train.fingerprint(cfg, PAIRS, "m", PAIRS[:4], tiny_tokenizer)
    assert fp != train.fingerprint(cfg, PAIRS, "m", PAIRS[:5], tiny_tokenizer)            # other validation data
    other_tok = build_tokenizer()
    other_tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert fp != train.fingerprint(cfg, PAIRS, "m", PAIRS[:4], other_tok)                  # another chat template
    watcher = train.ValidationAccuracy(tiny_tokenizer, ["a ->"], ["joy"], TONE_LABELS)
    assert isinstance(watcher, train.ValidationAccuracy)
    assert fp != train.fingerprint(cfg, PAIRS, "m", PAIRS[:4], tiny_tokenizer, [watcher])  # adds eval_accuracy
    assert fp == train.fingerprint(cfg, PAIRS, "m", PAIRS[:4], tiny_tokenizer, [CountSteps()])  # only watches
    assert fp != train.fingerprint(tiny_config(dtype="bfloat16"), PAIRS, "m", PAIRS[:4], tiny_tokenizer)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert fp != train.fingerprint(cfg, PAIRS, "m", PAIRS[:4], tiny_tokenizer)             # another global batch
    monkeypatch.delenv("WORLD_SIZE")
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda pkg: "9.9" if pkg == "trl" else real(pkg))
    assert fp != train.fingerprint(cfg, PAIRS, "m", PAIRS[:4], tiny_tokenizer)             # another TRL


def test_a_finished_run_is_not_reused_with_other_validation_data(tiny_tokenizer, tmp_path):
    cfg = tiny_config(eval_steps=6)
    run(tiny_tokenizer, tmp_path, "v", config=cfg, eval_pairs=PAIRS[:4], reuse=True)
    again = run(tiny_tokenizer, tmp_path, "v", config=cfg, eval_pairs=PAIRS[4:8], reuse=True)
    assert not again.reused
