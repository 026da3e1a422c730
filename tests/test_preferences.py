"""Preference pairs, DPO and GRPO on a tiny model: pairs from a verifier (ties dropped), DPO's loss
is the reference formula, GRPO's advantages are the group-normalised rewards, and `labkit dpo`
refuses bad pair files before anything is written."""

import json

import pytest
import torch
import torch.nn.functional as F

from labkit import train
from labkit.cli import main as cli
from labkit.preferences import check_pairs, preference_pairs, sample_completions
from conftest import build_model

PROMPTS = [f"Recipe: toss the eggs {i}\nIngredients:" for i in range(4)]


def tiny_config(**overrides):
    base = dict(max_steps=1, batch_size=2, learning_rate=1e-3, r=4, lora_alpha=8, logging_steps=1,
                eval_steps=None, save_steps=100, warmup_steps=0)
    return train.TrainConfig(**{**base, **overrides})


@pytest.fixture()
def sft_adapter(tmp_path, tiny_tokenizer):
    """A LoRA adapter of the tiny model with non-zero weights (an "SFT" adapter to start from)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    model = get_peft_model(build_model(tiny_tokenizer), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    model.save_pretrained(tmp_path / "sft")
    return tmp_path / "sft"


def test_pairs_from_a_fake_verifier_drop_ties():
    completions = [["a", "abc", "ab"], ["xx", "yy", "zz"], ["q", "qqqq", "qq"]]
    pairs = preference_pairs(["p0", "p1", "p2"], completions, lambda answer, ref: len(answer) + (ref or 0),
                             references=[0, 0, 10])
    assert [p["prompt"] for p in pairs] == ["p0", "p2"]            # p1: every answer scores 2, a tie
    assert (pairs[0]["chosen"], pairs[0]["rejected"]) == ("abc", "a")
    assert (pairs[1]["chosen_score"], pairs[1]["rejected_score"]) == (14.0, 11.0)


def test_sample_completions_batches_k_per_prompt(tiny_tokenizer):
    model = build_model(tiny_tokenizer)
    out = sample_completions(model, tiny_tokenizer, PROMPTS[:3], k=2, max_new_tokens=4, batch_size=4)
    assert [len(g) for g in out["completions"]] == [2, 2, 2]
    assert 0 < out["new_tokens"] <= 3 * 2 * 4


def _summed_logps(model, batch):
    """Per sequence: the summed log-probabilities of the completion tokens, from the full logits."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets, mask = batch["input_ids"][:, 1:], batch["completion_mask"][:, 1:].float()
    logps = torch.log_softmax(logits.float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logps * mask).sum(1)


def test_dpo_loss_is_the_reference_formula(tiny_tokenizer, sft_adapter, tmp_path):
    pairs = [{"prompt": p, "chosen": ' ["eggs", "milk"]', "rejected": ' ["flour"]'} for p in PROMPTS]
    beta = 0.3
    trainer = train.dpo_trainer(build_model(tiny_tokenizer), tiny_tokenizer, pairs, sft_adapter,
                                tiny_config(batch_size=4), beta=beta, output_dir=tmp_path / "dpo")
    model = trainer.model
    assert set(model.peft_config) == {"default", "ref"}            # the reference is an adapter, not a model copy
    for name, p in model.named_parameters():                       # move the policy away from the reference
        if ".default." in name and "lora_A" in name:
            p.data.add_(torch.randn_like(p) * 0.2)
    batch = next(iter(trainer.get_train_dataloader()))
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch)
        model.set_adapter("default")
        pc, pr = _summed_logps(model, batch).chunk(2)
        model.set_adapter("ref")
        rc, rr = _summed_logps(model, batch).chunk(2)
    expected = -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()
    assert abs(loss.item() - expected.item()) < 1e-4, (loss.item(), expected.item())
    assert abs(expected.item() - torch.log(torch.tensor(2.0)).item()) > 1e-3   # not the trivial log 2


def test_dpo_trains_saves_without_the_reference_and_refuses_another_run(tiny_tokenizer, sft_adapter, tmp_path):
    pairs = [{"prompt": p, "chosen": ' ["eggs"]', "rejected": ' ["salt", "salt"]'} for p in PROMPTS]
    model = build_model(tiny_tokenizer)
    result = train.dpo(model, tiny_tokenizer, pairs, sft_adapter, tiny_config(), output_dir=tmp_path / "run",
                       verbose=False)
    assert result.steps == 1 and result.trained_tokens > 0
    assert not (result.adapter_dir / "ref").exists()
    assert any("rewards/margins" in h for h in result.history)
    again = train.dpo(model, tiny_tokenizer, pairs, sft_adapter, tiny_config(), output_dir=tmp_path / "run",
                      reuse=True, verbose=False)
    assert again.reused
    with pytest.raises(train.RunConflictError):
        train.dpo(model, tiny_tokenizer, pairs[:2], sft_adapter, tiny_config(), output_dir=tmp_path / "run",
                  overwrite=False, verbose=False)


def test_grpo_advantages_are_the_group_normalised_rewards(tiny_tokenizer, sft_adapter, tmp_path):
    def length_reward(prompts, completions, **_):
        return [float(len(c)) for c in completions]

    result = train.grpo(build_model(tiny_tokenizer), tiny_tokenizer, [{"prompt": p} for p in PROMPTS],
                        [length_reward], sft_adapter, tiny_config(batch_size=2), num_generations=4,
                        max_completion_length=6, output_dir=tmp_path / "grpo", verbose=False)
    rewards, advantages = result.last_batch["rewards"], result.last_batch["advantages"]
    assert len(rewards) == len(advantages) == 8 and result.rewards[-1] == rewards
    expected = train.group_advantages(rewards, 4)
    assert torch.allclose(torch.tensor(advantages), expected, atol=1e-4), (advantages, expected)
    assert result.generated_tokens > 0 and any("kl" in h for h in result.history)


# --- labkit dpo: bad pair files -------------------------------------------------------------

@pytest.fixture()
def offline_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _write(tmp_path, rows, name="pairs.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


GOOD = {"prompt": "Recipe: eggs\nIngredients:", "chosen": ' ["eggs"]', "rejected": ' ["milk"]'}


@pytest.mark.parametrize("bad, expected", [
    ({"prompt": "p", "chosen": "a"}, [":2", "'rejected' is missing"]),
    ({**GOOD, "rejected": GOOD["chosen"]}, [":2", "the same text"]),
    ({**GOOD, "chosen": "  "}, [":2", "'chosen' is empty"]),
    ({**GOOD, "rejected": " eggs" * 300}, [":2", "'rejected'", "longer than max_length=256"]),
])
def test_cli_refuses_bad_pairs_before_writing(bad, expected, tmp_path, tiny_folder, capsys, offline_home):
    path = _write(tmp_path, [GOOD, bad])
    out = tmp_path / "out"
    code = cli.main(["dpo", "-m", str(tiny_folder), "--data_files", str(path), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    line = [l for l in err.splitlines() if l.startswith("error: ")][0]
    for text in [str(path) + expected[0]] + expected[1:]:
        assert text in line, line
    assert not out.exists()


def test_check_pairs_reads_csv_rows(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text('prompt,chosen,rejected\n"Recipe: eggs","[""eggs""]","[""milk""]"\n')
    from labkit.preferences import read_pairs

    assert read_pairs(path) == [{"prompt": "Recipe: eggs", "chosen": '["eggs"]', "rejected": '["milk"]'}]
    with pytest.raises(Exception, match="no examples"):
        check_pairs([])


def test_ci_shrinks_the_lessons_quick_sizes(monkeypatch):
    from labkit import env

    monkeypatch.setenv("LABKIT_PROFILE", "quick")
    monkeypatch.delenv("CI", raising=False)
    quick = env.settings("preferences")
    monkeypatch.setenv("CI", "true")
    ci = env.settings("preferences")
    assert "ci" not in quick and ci["dpo_steps"] < quick["dpo_steps"] and ci["k"] == quick["k"]
