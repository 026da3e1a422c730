"""labkit.course.check: every exercise's reference answer passes its check and a plausible wrong one
fails with a hint. Each case computes the answer the way the lesson's worked solution does, on
small inputs built here (no real model, no training)."""

import math
import types

import numpy as np
import pandas as pd
import pytest
import torch

from labkit.course.check import CHECKS, OPEN_ENDED, YourTurn, check, replay_early_stopping


# --------------------------------------------------------------------------- one case per exercise:
# each returns (reference answer, a wrong answer, the lesson's measured context, a fragment of the hint)


def _chat_tokenizer():
    """conftest's tiny tokenizer with a ChatML template like SmolLM2's (a default system turn when none is given)."""
    from conftest import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.chat_template = (
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return tokenizer


def case_00_1():
    tokenizer = _chat_tokenizer()
    messages = [{"role": "user", "content": "In one sentence: what is fine-tuning a language model?"}]
    pirate = [{"role": "system", "content": "You answer like a pirate."}] + messages
    text = tokenizer.apply_chat_template(pirate, add_generation_prompt=True, tokenize=False)
    right = {"prompt": text, "reply": "Arr, fine-tuning be teachin' an old model new tricks."}
    wrong = dict(right, prompt=tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    return right, wrong, dict(tokenizer=tokenizer, messages=messages), "no pirate system message"


def case_00_2():
    tokenizer = _chat_tokenizer()
    messages = [{"role": "user", "content": "In one sentence: what is fine-tuning a language model?"}]
    prompt_text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    total = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    message_only = len(tokenizer(messages[0]["content"], add_special_tokens=False)["input_ids"])
    right = {"prompt tokens": total, "message tokens": message_only}
    wrong = {"prompt tokens": len(prompt_text.split()), "message tokens": message_only}    # words, not tokens
    return right, wrong, dict(tokenizer=tokenizer, prompt_text=prompt_text, messages=messages), "not its characters or words"


def case_01_1():
    lesson = {0: 0.3, 5: 0.4}
    accuracy_by_k = {**lesson, 1: 0.2, 10: 0.5}
    wrong = {**lesson, 1: 0.2}                                       # k = 10 not measured
    return accuracy_by_k, wrong, dict(n_test=10, lesson_accuracy=lesson), "k = 10"


def case_01_2():
    best_prompt, full, small_acc = 0.4, 0.8, 0.6
    kept = (small_acc - best_prompt) / (full - best_prompt)
    right = {"examples": 50, "accuracy": small_acc, "gain kept": kept}
    wrong = {**right, "gain kept": small_acc / full}                 # a ratio of accuracies, not of gains
    return right, wrong, dict(n_test=10, best_prompt=best_prompt, full_data=full), "two gains"


def case_02_1():
    cfg = types.SimpleNamespace(r=16, lora_alpha=32)
    torch.manual_seed(0)
    A, B = torch.randn(16, 24), torch.randn(24, 16)
    scale = cfg.lora_alpha / cfg.r
    delta_W = (B @ A) * scale
    right = {"scale": 4 * scale, "update growth": float((4 * scale * (B @ A)).norm() / delta_W.norm())}
    wrong = {"scale": 4 * cfg.lora_alpha / (4 * cfg.r), "update growth": 1.0}   # rank scaled with alpha
    return right, wrong, dict(config=cfg), "the scale is α/r"


def _param_table():
    rows = []
    for targets, per_layer in (("attention (q,k,v,o)", 3840), ("all-linear", 10176)):
        for r in (4, 8, 16, 64):
            rows.append({"targets": targets, "r": r, "trainable": r * per_layer * 30,   # SmolLM2-135M's counts
                         "formula r·(d_in+d_out)": r * per_layer * 30})
    return pd.DataFrame(rows).set_index(["targets", "r"])


def case_02_2():
    table = _param_table()
    size_rows = []
    for r, targets, label in ((4, "attention", "attention (q,k,v,o)"), (64, "all-linear", "all-linear")):
        trainable = int(table.loc[(label, r), "trainable"])
        mb = (4 * trainable + 26_000) / 1e6                          # fp32 weights + a safetensors header
        size_rows.append({"r": r, "targets": targets, "trainable": trainable, "adapter MB": mb, "% of base file": 1.0})
    wrong = [dict(size_rows[0], trainable=int(table.loc[("all-linear", 4), "trainable"])), size_rows[1]]
    return size_rows, wrong, dict(param_table=table), "target_modules"


def case_03_1():
    single = 4 + 32 / 64
    double = 4 + 8 / 64 + 32 / (64 * 256)
    measured = double + 2e-5                                         # the real model: a few rounded-up blocks
    wrong = {"NF4": single, "NF4 + double quantisation": 4 + 8 / 64}  # forgot the fp32 scales of the scales
    return {"NF4": single, "NF4 + double quantisation": double}, wrong, dict(measured_bits=measured), "256"


def _levels():
    return torch.linspace(-1, 1, 16)


def quantise_by_hand(w, blocksize=64):
    """A stand-in for lesson 03's nf4_by_hand: blockwise absmax, nearest of 16 levels."""
    blocks = w.reshape(-1, blocksize)
    absmax = blocks.abs().max(dim=1, keepdim=True).values
    codes = (blocks / absmax).unsqueeze(-1).sub(_levels()).abs().argmin(dim=-1)
    return (_levels()[codes] * absmax).reshape(w.shape)


def case_03_2():
    torch.manual_seed(0)
    W = torch.randn(32, 64)

    def errors(w_hat):
        return {"mean |error|": (w_hat - W).abs().mean().item(), "relative error": ((w_hat - W).norm() / W.norm()).item()}

    rows = [{"block size": bs, **errors(quantise_by_hand(W, bs))} for bs in (32, 64, 128, 256)]
    by_bs = pd.DataFrame(rows).set_index("block size")
    right = by_bs["relative error"].to_dict()
    wrong = by_bs["mean |error|"].to_dict()
    return right, wrong, dict(W=W, quantise=quantise_by_hand), "relative error"


def case_04_1():
    from labkit.evaluate import classification_report

    labels = ["joy", "anger", "sadness", "fear", "neutral"]
    view_gold = ["neutral"] * 28 + [label for label in labels[:4] for _ in range(3)]
    maj = classification_report(view_gold, ["neutral"] * len(view_gold), labels)
    support = np.array([maj["per_class"][l]["support"] for l in labels])
    f1 = np.array([maj["per_class"][l]["f1"] for l in labels])
    weighted = float((f1 * support).sum() / support.sum())
    right = {"weighted F1": weighted, "report": "macro-F1"}
    wrong = {"weighted F1": weighted, "report": "weighted F1"}
    return right, wrong, dict(gold=view_gold, predicted=["neutral"] * len(view_gold)), "never finds"


def case_04_2():
    widths = {10: 0.47, 20: 0.33, 40: 0.23, 80: 0.16, 138: 0.121}
    c = np.mean([w * np.sqrt(n) for n, w in widths.items()])
    needed = int(np.ceil((c / 0.06) ** 2))
    wrong = int(np.ceil((c / 0.03) ** 2))                            # ±3 points taken as the whole width
    return needed, wrong, dict(widths=widths), "half-width"


EVALS = [{"step": s, "eval_loss": l} for s, l in [(5, 2.0), (10, 1.5), (15, 1.6), (20, 1.55), (25, 1.7), (30, 1.8)]]


def replay(evals, patience):
    """Lesson 05's worked solution, as written there."""
    best, waited = None, 0
    for e in evals:
        if best is None or e["eval_loss"] < best["eval_loss"]:
            best, waited = e, 0
        else:
            waited += 1
            if waited >= patience:
                return e["step"], best["step"]
    return evals[-1]["step"], best["step"]


def case_05_1():
    stops = {patience: replay(EVALS, patience) for patience in (1, 2, 4)}
    wrong = {p: (stop, stop) for p, (stop, _) in stops.items()}    # restores the last checkpoint, not the best
    return stops, wrong, dict(evals=EVALS), "lowest validation loss"


def case_05_2():
    table = pd.DataFrame({"final val loss": [2.1, 1.8, 2.3, 2.1, 1.9, 0.5],
                          "final val accuracy": [0.47, 0.47, 0.31, 0.47, 0.34, 0.47]},
                         index=pd.Index(["overfit", "early stopping", "dropout 0.1", "weight decay 0.01", "rank 4",
                                         "more data"], name="run"))
    chosen = table.drop(index="overfit")["final val loss"].idxmin()
    by_acc = table.drop(index="overfit")["final val accuracy"].idxmax()   # a three-way tie: the first one
    right = {"on accuracy": by_acc, "agrees with loss": by_acc == chosen, "trust": "validation loss"}
    wrong = dict(right, trust="accuracy")
    return right, wrong, dict(table=table), "how much does one answer move accuracy"


def case_06_1():
    gold = ["joy", "fear", "anger", "fear"]
    predicted = ["joy", "anger", "anger", "joy"]
    right = {"message": 1, "greedy": ["anger"] * 5, "sampled": ["anger", "fear", "joy"] * 3 + ["fear"]}
    wrong = dict(right, message=0)                                   # a message it got right
    return right, wrong, dict(predicted=predicted, gold=gold), "got wrong"


def case_06_2():
    right = {"size (MB)": 92.3, "accuracy": 113 / 138}
    wrong = {"size (MB)": 117.2, "accuracy": 113 / 138}              # the default export again
    return right, wrong, dict(default_mb=117.2, n_test=138), "matmul_mixed_precision"


def _two_adapters(tiny_tokenizer, weights):
    from peft import LoraConfig, get_peft_model

    from conftest import build_model

    cfg = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    multi = get_peft_model(build_model(tiny_tokenizer), LoraConfig(**cfg), adapter_name="tone")
    multi.add_adapter("recipes", LoraConfig(**cfg))
    multi.add_weighted_adapter(["tone", "recipes"], weights, adapter_name="mix", combination_type="cat")
    return multi


def case_07_1(tiny_tokenizer):
    served = types.SimpleNamespace(adapters={"tone": "t.onnx_adapter", "mix": "mix.onnx_adapter"})
    right = {"adapter": "mix", "tone accuracy": 7 / 10, "recipes item F1": 0.4, "ONNX tone accuracy": 6 / 10}
    context = dict(model=_two_adapters(tiny_tokenizer, [1.0, 1.0]), served=served, n_tone=10)
    wrong_context = dict(context, model=_two_adapters(tiny_tokenizer, [1.0, 0.5]))
    return right, right, context, "1:1", wrong_context


def fake_quant(w, bits=4, block=32):
    """Lesson 07's worked solution, as written there."""
    x = w.reshape(w.shape[0], -1, block)
    lo, hi = np.minimum(x.min(-1, keepdims=True), 0), np.maximum(x.max(-1, keepdims=True), 0)
    scale = np.maximum((hi - lo) / (2**bits - 1), 1e-12)
    zero = np.round(-lo / scale)
    return ((np.clip(np.round(x / scale) + zero, 0, 2**bits - 1) - zero) * scale).reshape(w.shape).astype(np.float32)


def case_07_2():
    rng = np.random.default_rng(0)
    tone_params = {"m.q_proj.lora_A.weight": rng.normal(0, 0.05, (64, 16)).astype(np.float32),     # A^T: [in, r]
                   "m.q_proj.lora_B.weight": rng.normal(0, 0.01, (16, 48)).astype(np.float32)}    # (sB)^T: [r, out]
    rounded = {k: fake_quant(v.T, block=32 if ".lora_A." in k else 16).T.copy() for k, v in tone_params.items()}
    eight_bit = {k: fake_quant(v.T, bits=8, block=32 if ".lora_A." in k else 16).T.copy() for k, v in tone_params.items()}
    right, wrong = {"rounded": rounded, "accuracy": 0.8}, {"rounded": eight_bit, "accuracy": 0.8}
    return right, wrong, dict(float_params=tone_params, n_test=10), "different values in one block"


def case_08_1():
    trial = lambda n, score: types.SimpleNamespace(number=n, intermediate_values={} if score is None else {6: score})
    trials = [trial(0, 0.50), trial(1, 0.40), trial(2, None), trial(3, 0.60), trial(4, 0.45)]
    # medians of the earlier scores: trial 1 vs 0.50 -> stop; 3 vs 0.45 -> go on; 4 vs median(0.5, 0.4, 0.6)=0.5 -> stop
    return [1, 4], [1], dict(trials=trials, step=6), "median of the scores of the trials before it"


def case_08_2():
    forgetting = pd.DataFrame({"test accuracy": [0.40, 0.90, 0.86, 0.84, 0.40],
                               "rise": [0.0, 0.20, 0.03, 0.04, 0.0], "rise high": [0.0, 0.30, 0.045, 0.06, np.nan]},
                              index=["base model", "best trial", "+ rehearsal", "lower rank (r=4)", "adapter off"])
    return "+ rehearsal", "lower rank (r=4)", dict(forgetting=forgetting, budget=0.05), "interval's upper end"


def case_09_1():
    rewards = [1.0, 0.0, 0.5, 0.5, 0.2, 0.2, 0.2, 0.2]   # the second group all tied: advantage 0 everywhere
    r = np.array(rewards).reshape(-1, 4)
    right = ((r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-4)).ravel()
    centred_only = (r - r.mean(1, keepdims=True)).ravel()
    return right, centred_only, dict(rewards=rewards, group_size=4), "not divided by the group's standard deviation"


def case_09_2():
    scores = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 0], [0.5, 1, 0], [0.5, 0.5, 0.5]])
    return ({"all perfect": 1, "all zero": 2}, {"all perfect": 1, "all zero": 1}, dict(scores=scores),
            "a tie is a prompt whose best and worst samples score the same")


CASES = {"00.1": case_00_1, "00.2": case_00_2, "01.1": case_01_1, "01.2": case_01_2, "02.1": case_02_1, "02.2": case_02_2,
         "03.1": case_03_1, "03.2": case_03_2, "04.1": case_04_1, "04.2": case_04_2, "05.1": case_05_1, "05.2": case_05_2,
         "06.1": case_06_1, "06.2": case_06_2, "07.1": case_07_1, "07.2": case_07_2,
         "08.1": case_08_1, "08.2": case_08_2, "09.1": case_09_1, "09.2": case_09_2}


def _case(eid, tiny_tokenizer):
    """(right, wrong, context, hint fragment, context for the wrong answer) of exercise ``eid``."""
    made = CASES[eid](tiny_tokenizer) if eid == "07.1" else CASES[eid]()
    return made if len(made) == 5 else (*made, made[2])


def test_every_exercise_has_a_case():
    assert set(CASES) == set(CHECKS), "add a case here for every registered exercise"


@pytest.mark.parametrize("eid", sorted(CASES))
def test_the_reference_answer_passes(eid, tiny_tokenizer, capsys):
    right, _, context, _, _ = _case(eid, tiny_tokenizer)
    assert check(eid, right, **context) is True
    assert capsys.readouterr().out.startswith(f"✓ {eid}: ")


@pytest.mark.parametrize("eid", sorted(CASES))
def test_a_wrong_answer_fails_with_a_hint(eid, tiny_tokenizer, capsys):
    _, wrong, _, hint, wrong_context = _case(eid, tiny_tokenizer)
    assert check(eid, wrong, **wrong_context) is False
    out = capsys.readouterr().out
    assert out.startswith(f"✗ {eid}: ") and hint in out, out


def test_an_answer_of_another_shape_is_wrong_not_a_crash(capsys):
    assert check("05.1", 42, evals=EVALS) is False
    assert "Expected a dict {patience:" in capsys.readouterr().out


def test_an_unknown_exercise_is_a_clear_error():
    with pytest.raises(ValueError, match=r"No exercise '09.9'\. Known exercises: 00\.1, 00\.2, 01\.1"):
        check("09.9", 1)


def test_a_missing_measurement_names_what_the_check_needs():
    with pytest.raises(TypeError, match=r"takes the lesson's evals=\.\.\."):
        check("05.1", {1: (15, 10)})


def test_the_replay_is_transformers_early_stopping():
    assert replay_early_stopping(EVALS, 1) == (15, 10)
    assert replay_early_stopping(EVALS, 2) == (20, 10)
    assert replay_early_stopping(EVALS, 4) == (30, 10)
    assert replay_early_stopping(EVALS, 9) == (30, 10)   # never stops: the end of the run


def test_every_checker_says_what_it_checks_and_what_the_answer_is():
    for eid, checker in CHECKS.items():
        assert len(eid) == 4 and eid[2] == "." and eid.replace(".", "").isdigit(), eid
        assert checker.__doc__ and len(checker.__doc__) > 80, eid
        assert checker.answer, eid
    assert not set(OPEN_ENDED) & set(CHECKS)


def test_your_turn_renders_without_a_traceback():
    error = YourTurn("02.1")
    lines = error._render_traceback_()
    assert lines[0].startswith("✎ Exercise 02.1 is yours: replace this cell's `raise` with your code")
    assert any("instructor's copy (notebooks/)" in line for line in lines)
    assert not any("Traceback" in line for line in lines)


def test_ipython_shows_your_turn_as_its_message_only(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    result = shell.run_cell('from labkit.course.check import YourTurn\nraise YourTurn("05.2")')
    out = capsys.readouterr()
    shown = out.out + out.err
    assert isinstance(result.error_in_exec, YourTurn)
    assert "✎ Exercise 05.2 is yours" in shown and "Traceback" not in shown and "raise YourTurn" not in shown


def test_checks_are_tolerant_only_where_the_lesson_is():
    # 01.1: an accuracy must be a whole number of right answers out of n
    assert check("01.1", {1: 0.25, 10: 0.5}, n_test=10, lesson_accuracy={}) is False
    # 04.2: any c fitted to the measured widths passes; the largest and smallest c bound the answer
    widths = {10: 0.47, 20: 0.33, 40: 0.23, 80: 0.16, 138: 0.121}
    for n, w in widths.items():
        assert check("04.2", math.ceil((w * math.sqrt(n) / 0.06) ** 2), widths=widths)
