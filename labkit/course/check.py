"""Exercises that check themselves: ``check("02.1", answer, **what_the_lesson_measured)``.

Every lesson ends with exercises. After solving one, a learner calls

    from labkit.course.check import check
    check("05.1", stops, evals=results["overfit"]["evals"])

and gets one line back: ``✓ 05.1: <what was right>`` or ``✗ 05.1: <a hint>`` (the hint points
at the mistake without giving the answer away). ``check`` returns True or False and never
raises on a wrong answer; an unknown exercise id is a ``ValueError`` that lists the known ones.

A check judges the answer against what the lesson itself measured, passed in as keyword
arguments (the logged evaluation curve, the lesson's table, its weight matrix): it recomputes
the reference from those, so it holds on every seed and every CPU. It never compares with a
hard-coded number, and never puts a threshold on a noisy trained number. Where part of an
exercise is a judgement (when would you sample?), the check judges what can be judged and its
docstring says what is left to the learner. The instructor's notebooks end each worked
solution with ``assert check(...)``, so CI proves that every reference answer passes.

Student copies (``labkit.course.student``) replace each worked solution with a cell that raises
:class:`YourTurn`, which Jupyter shows as one line, without a traceback.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

CHECKS: dict = {}       # exercise id ("NN.K": lesson NN, exercise K) -> its checker
OPEN_ENDED: dict = {}   # exercise id -> why it has no checker (none at present: every exercise has one)


class YourTurn(Exception):
    """Raised by an exercise cell of a student copy: the exercise is the learner's to write.

    Defines IPython's ``_render_traceback_`` hook, so Jupyter shows the message and no traceback."""

    def __init__(self, exercise: str):
        self.exercise = exercise
        super().__init__(f"✎ Exercise {exercise} is yours: replace this cell's `raise` with your code, then run it.\n"
                         "  The worked solution is in the instructor's copy (notebooks/).")

    def _render_traceback_(self) -> list[str]:
        """What IPython prints instead of a traceback: the message, one list item per line."""
        return str(self).splitlines()


def checker_for(eid: str, answer: str):
    """Register the decorated function as the checker of exercise ``eid``; ``answer`` says, in
    words, what the learner passes as the answer (student copies show it next to the call)."""
    def register(checker):
        checker.exercise, checker.answer = eid, answer
        CHECKS[eid] = checker
        return checker
    return register


def check(exercise: str, answer, **measured) -> bool:
    """Judge the answer to ``exercise`` against what the lesson measured; print ✓ or ✗ and a line.

    ``measured`` are the lesson's own numbers and objects the checker needs (each checker's
    docstring names them). Returns True for a right answer, False (with a hint) otherwise."""
    checker = CHECKS.get(exercise)
    if checker is None:
        raise ValueError(f"No exercise {exercise!r}. Known exercises: {', '.join(sorted(CHECKS))}.")
    try:
        inspect.signature(checker).bind(answer, **measured)
    except TypeError as e:
        needs = [p for p in inspect.signature(checker).parameters if p != "answer"]
        raise TypeError(f"check({exercise!r}, answer, ...) takes the lesson's {', '.join(f'{n}=...' for n in needs)} "
                        f"({e}); see help(labkit.course.check.CHECKS[{exercise!r}]).") from None
    try:
        ok, message = checker(answer, **measured)
    except Exception as e:   # an answer of another shape than the checker reads: a wrong answer, not a crash
        ok, message = False, f"could not read this answer ({type(e).__name__}: {e}). Expected {checker.answer}."
    print(f"{'✓' if ok else '✗'} {exercise}: {message}")
    return bool(ok)


# --------------------------------------------------------------------------- helpers


def _accuracy_on(value, n: int) -> bool:
    """Whether ``value`` can be an accuracy on ``n`` examples: k/n for a whole k in 0..n."""
    return 0 <= value <= 1 and abs(value * n - round(value * n)) < 1e-6


def _close(a, b, rel: float = 1e-6) -> bool:
    """``a`` equals ``b`` up to a relative tolerance (and a tiny absolute one)."""
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12)


# --------------------------------------------------------------------------- lesson 00


@checker_for("00.1", answer='a dict {"prompt": the chat-template text with the pirate system message, '
                         '"reply": the model\'s reply}')
def _system_prompt(answer, tokenizer, messages, system: str = "You answer like a pirate."):
    """A system prompt. Rebuilds the prompt from the lesson's ``tokenizer`` and ``messages`` with the
    system message first, compares it with the answer's, and checks that the reply is generated
    text. Whether the 135M model talks like a pirate is open: the learner reads the reply."""
    expected = tokenizer.apply_chat_template([{"role": "system", "content": system}] + list(messages),
                                             add_generation_prompt=True, tokenize=False)
    if system not in answer["prompt"]:
        return False, "the prompt text has no pirate system message: put it first in the list of messages"
    if answer["prompt"] != expected:
        return False, ("build the prompt with tokenizer.apply_chat_template(..., add_generation_prompt=True, tokenize=False) "
                       "from the system message followed by the lesson's messages")
    if not isinstance(answer["reply"], str) or not answer["reply"].strip():
        return False, "the reply should be the text the model generated after that prompt (decode only the new tokens)"
    return True, f"the model answered the pirate prompt with {len(answer['reply'].split())} words: does it sound like a pirate?"


@checker_for("00.2", answer='a dict {"prompt tokens": tokens of the whole prompt text, '
                         '"message tokens": tokens of your message alone}')
def _template_overhead(answer, tokenizer, prompt_text, messages):
    """Template overhead. Recounts with the lesson's ``tokenizer`` the tokens of its ``prompt_text``
    and of the user message in ``messages`` (no special tokens added: the template has its own)."""
    def count(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    total, message = count(prompt_text), count(messages[-1]["content"])
    if answer["prompt tokens"] != total:
        return False, ("count the prompt text's tokens with the tokenizer (add_special_tokens=False: the template "
                       "already holds its special tokens), not its characters or words")
    if answer["message tokens"] != message:
        return False, "count the tokens of your message's content alone, with the same tokenizer"
    return True, f"{total} prompt tokens, {message} of them your message: {total - message} are the template's"


# --------------------------------------------------------------------------- lesson 01


@checker_for("01.1", answer="a dict {k: test accuracy with k examples in the prompt}, with k = 1 and k = 10 at least")
def _vary_k(answer, n_test, lesson_accuracy):
    """Few-shot accuracy by k. Checks that k = 1 and k = 10 were measured, that each value is an
    accuracy on the lesson's ``n_test`` test messages (k/n), and that any k the lesson measured itself
    (``lesson_accuracy``: zero-shot and the lesson's few-shot k) has the lesson's number. Whether more
    examples help is read from these numbers, by the learner."""
    missing = [k for k in (1, 10) if k not in answer]
    if missing:
        return False, f"no accuracy for k = {', '.join(map(str, missing))}: measure those prompts too"
    off = [k for k, acc in answer.items() if not _accuracy_on(acc, n_test)]
    if off:
        return False, f"k = {off[0]}: {answer[off[0]]} is not an accuracy on the {n_test} test messages (right / {n_test})"
    for k, acc in lesson_accuracy.items():
        if k in answer and not _close(answer[k], acc):
            return False, f"k = {k} differs from the lesson's own measurement: score the same test messages the same way"
    ks = sorted(answer)
    return True, "accuracy by k: " + ", ".join(f"{k}: {answer[k]:.3f}" for k in ks) + " (now read it: did more examples help?)"


@checker_for("01.2", answer='a dict {"examples": training examples used, "accuracy": its test accuracy, '
                         '"gain kept": the share of LoRA\'s gain over the best prompt that it kept}')
def _less_data(answer, n_test, best_prompt, full_data):
    """50 training examples. Checks that the run used 50 examples, that its accuracy is one on the
    lesson's ``n_test`` test messages, and that "gain kept" is (accuracy - best prompt) / (full-data
    LoRA - best prompt), recomputed from the lesson's ``best_prompt`` and ``full_data`` accuracies."""
    if answer["examples"] != 50:
        return False, f"the exercise trains on 50 examples, this run used {answer['examples']}"
    if not _accuracy_on(answer["accuracy"], n_test):
        return False, f"{answer['accuracy']} is not an accuracy on the {n_test} test messages"
    kept = (answer["accuracy"] - best_prompt) / (full_data - best_prompt)
    if not _close(answer["gain kept"], kept, rel=1e-4):
        return False, ("'gain kept' should compare two gains over the best prompt: the 50-example run's and "
                       "the full-data run's (a share, 1.0 = all of it)")
    return True, f"50 examples kept {kept:.0%} of the fine-tune's gain over the best prompt"


# --------------------------------------------------------------------------- lesson 02


@checker_for("02.1", answer='a dict {"scale": α/r with lora_alpha multiplied by 4, '
                         '"update growth": |ΔW| after / |ΔW| before}')
def _alpha(answer, config):
    """α × 4. Checks the new scale against the trained adapter's own ``config`` (4·lora_alpha / r)
    and that the update ΔW grows by the same factor as the scale. What that does to the outputs is
    measured in the solution and read by the learner."""
    scale = 4 * config.lora_alpha / config.r
    if not _close(answer["scale"], scale):
        return False, "the scale is α/r: which of the two did the exercise change, and which stayed? (cfg holds both)"
    if not _close(answer["update growth"], 4, rel=1e-3):
        return False, "ΔW = (α/r)·B·A: with B and A unchanged, |ΔW| grows exactly as much as the scale"
    return True, f"α/r goes from {config.lora_alpha / config.r:g} to {scale:g}, and ΔW grows 4x with it"


@checker_for("02.2", answer='a list of two rows (dicts) with "r", "targets", "trainable" and "adapter MB": '
                         'r=4 on the attention projections, r=64 on all-linear')
def _rank_targets(answer, param_table):
    """Rank and targets. Checks the trainable counts against the lesson's ``param_table`` (PEFT's
    own counts, indexed by targets and r) and that the file size follows the count: the same number
    of bytes per parameter for both adapters (within 5%), 2 to 4 bytes each (16- or 32-bit weights)."""
    rows = {int(row["r"]): row for row in answer}
    if set(rows) != {4, 64}:
        return False, "one row for r=4 (attention only) and one for r=64 (all-linear)"
    for r, word in ((4, "attention"), (64, "all-linear")):
        expected = [v for (targets, rank), v in param_table["trainable"].items() if rank == r and word in str(targets)]
        if not expected:
            return False, f"the lesson's param_table has no row for {word} at r={r}"
        if rows[r]["trainable"] != expected[0]:
            return False, (f"r={r}: {rows[r]['trainable']:,} trainable parameters, not what PEFT counted for {word} "
                           "at that rank in section 2: check target_modules")
    per_param = [rows[r]["adapter MB"] * 1e6 / rows[r]["trainable"] for r in (4, 64)]
    if not all(1.9 < b < 4.5 for b in per_param) or abs(per_param[0] / per_param[1] - 1) > 0.05:
        return False, "the file size should follow the trainable count: measure adapter_model.safetensors in MB (1e6 bytes)"
    ratio = rows[64]["trainable"] / rows[4]["trainable"]
    files = rows[64]["adapter MB"] / rows[4]["adapter MB"]
    return True, f"{ratio:.0f}x the parameters and {files:.0f}x the file: size follows the count"


# --------------------------------------------------------------------------- lesson 03


@checker_for("03.1", answer='a dict of bits per weight {"NF4": with fp32 scales, '
                         '"NF4 + double quantisation": with 8-bit scales}')
def _bits(answer, measured_bits, block: int = 64, scale_block: int = 256):
    """Bits per weight. Checks NF4 with fp32 scales against 4 + 32/block, and NF4 with double
    quantisation against the bits per weight the lesson measured on the real 4-bit model
    (``measured_bits``: packed weights and constants / weights). The 7B memory follows as
    7e9 × bits / 8 bytes."""
    single = 4 + 32 / block
    if not _close(answer["NF4"], single):
        return False, f"NF4 with fp32 scales: 4 bits per weight plus one 32-bit absmax per block of {block} weights"
    if abs(answer["NF4 + double quantisation"] - measured_bits) > 5e-4:
        return False, (f"with double quantisation each block's absmax takes 8 bits, plus one fp32 scale per "
                       f"{scale_block} absmax values (the lesson measured the real model's bits per weight in section 2)")
    return True, (f"{single:.3f} bits without and {answer['NF4 + double quantisation']:.3f} with double quantisation "
                  f"(the lesson measured {measured_bits:.3f})")


@checker_for("03.2", answer="a dict {block size: relative error ‖Ŵ−W‖/‖W‖ of nf4_by_hand(W, block size)} "
                         "for 32, 64, 128 and 256")
def _block_size(answer, W, quantise):
    """Block size. Recomputes the relative error of ``quantise(W, block)`` (the lesson's
    ``nf4_by_hand`` on its ``up_proj`` matrix ``W``) at each block size and compares. How the cost of
    the scales (32/block bits per weight) trades against the error is the learner's reading."""
    for block in (32, 64, 128, 256):
        if block not in answer:
            return False, f"no error for block size {block}"
        w_hat = quantise(W, block)
        error = float((w_hat - W).norm() / W.norm())
        if not _close(answer[block], error, rel=1e-3):
            return False, f"block size {block}: measure the relative error ‖Ŵ−W‖/‖W‖ of nf4_by_hand(W, {block})"
    return True, (f"relative error {answer[32]:.4f} at blocks of 32 to {answer[256]:.4f} at 256, while the fp32 scales "
                  "cost 1 to 0.125 bits per weight")


# --------------------------------------------------------------------------- lesson 04


def _weighted_f1(gold, predicted) -> float:
    """scikit-learn's weighted F1: each class's F1 (0 where undefined) weighted by its share of ``gold``."""
    total = 0.0
    for label in set(gold):
        tp = sum(g == p == label for g, p in zip(gold, predicted))
        n_pred, n_gold = sum(p == label for p in predicted), sum(g == label for g in gold)
        f1 = 2 * tp / (n_pred + n_gold) if tp else 0.0
        total += f1 * n_gold
    return total / len(gold)


@checker_for("04.1", answer='a dict {"weighted F1": the always-neutral model\'s weighted F1 on the imbalanced view, '
                         '"report": which F1 you would put in a report}')
def _weighted(answer, gold, predicted):
    """Weighted vs macro F1. Recomputes the weighted F1 from the view's ``gold`` labels and the
    always-neutral ``predicted`` ones, and checks that the report names macro-F1 (the one that does
    not inherit the imbalance)."""
    weighted = _weighted_f1(list(gold), list(predicted))
    if not _close(answer["weighted F1"], weighted, rel=1e-4):
        return False, ("weight each class's F1 by its support (how many of the view's messages have that label), "
                       "then divide by the total")
    if "macro" not in str(answer["report"]).lower():
        return False, "which of the two would notice that the model never finds a single joy, anger, sadness or fear message?"
    return True, f"weighted F1 {weighted:.2f} flatters the do-nothing model; macro-F1 exposes it"


@checker_for("04.2", answer="the number of test examples needed (an int)")
def _test_size(answer, widths, width: float = 0.06):
    """Test-set size. From the lesson's measured interval ``widths`` ({n: width}), c = width·√n
    at each n; the answer must lie between (c/width)² for the smallest and the largest c (any fit
    of c/√n to the measured widths lands there)."""
    cs = [w * math.sqrt(n) for n, w in widths.items()]
    low, high = math.floor((min(cs) / width) ** 2), math.ceil((max(cs) / width) ** 2)
    if not low <= answer <= high:
        return False, (f"width ≈ c/√n: fit c to the measured widths, then solve for n at width {width} "
                       "(±3 points is the half-width)")
    return True, f"about {answer} test examples: the measured widths put it between {low} and {high}"


# --------------------------------------------------------------------------- lesson 05


def replay_early_stopping(evals: list[dict], patience: int) -> tuple[int, int]:
    """``(step where it stops, step it restores)`` for early stopping with ``patience`` on logged
    evaluations (dicts with ``step`` and ``eval_loss``): stop at the ``patience``-th evaluation in a
    row without a new best (as transformers' EarlyStoppingCallback), or at the last one."""
    best, waited = None, 0
    for e in evals:
        if best is None or e["eval_loss"] < best["eval_loss"]:
            best, waited = e, 0
        else:
            waited += 1
            if waited >= patience:
                return e["step"], best["step"]
    return evals[-1]["step"], best["step"]


@checker_for("05.1", answer="a dict {patience: (step where it stops, step it restores)} for patience 1, 2 and 4")
def _patience(answer, evals):
    """Patience. Replays early stopping on the overfit run's logged ``evals`` and compares each
    patience's stop and restored step. The risk of a small patience is the learner's reading."""
    for patience in (1, 2, 4):
        if patience not in answer:
            return False, f"no answer for patience {patience}"
        stop, restore = (int(x) for x in answer[patience])
        ref_stop, ref_restore = replay_early_stopping(evals, patience)
        if restore != ref_restore:
            return False, (f"patience {patience}: early stopping restores the evaluation with the lowest validation loss "
                           "seen before it stopped, not the last one")
        if stop != ref_stop:
            return False, (f"patience {patience}: it stops after {patience} evaluation(s) in a row without a new best "
                           "(or at the end of the run)")
    return True, "; ".join(f"patience {p} stops at step {answer[p][0]}, restores {answer[p][1]}" for p in (1, 2, 4))


@checker_for("05.2", answer='a dict {"on accuracy": the fix chosen on final validation accuracy, '
                         '"agrees with loss": True/False, "trust": "loss" or "accuracy"}')
def _choose_on_accuracy(answer, table):
    """Choose on validation accuracy. Recomputes from the lesson's ``table`` (one row per run):
    the fix with the best final validation accuracy (any of them when several tie), whether it is
    the fix chosen on validation loss, and checks that the loss is the one to trust on a split this
    small."""
    fixes = table.drop(index="overfit")
    best_acc = fixes["final val accuracy"].max()
    tied = list(fixes.index[fixes["final val accuracy"] == best_acc])
    if answer["on accuracy"] not in tied:
        return False, "choose among the fixes (not the overfit run) the one with the highest final val accuracy"
    agrees = answer["on accuracy"] == fixes["final val loss"].idxmin()
    if bool(answer["agrees with loss"]) != agrees:
        return False, "compare your choice with the fix chosen on the lowest final val loss"
    if "loss" not in str(answer["trust"]).lower():
        return False, "with a few dozen validation messages, how much does one answer move accuracy? and the loss?"
    tie = f" (tied with {', '.join(t for t in tied if t != answer['on accuracy'])})" if len(tied) > 1 else ""
    return True, (f"{answer['on accuracy']!r} on accuracy{tie}, {'the same as' if agrees else 'not'} the choice on loss; "
                  "the loss uses every message's confidence")


# --------------------------------------------------------------------------- lesson 06


@checker_for("06.1", answer='a dict {"message": index of the test message, "greedy": the 5 greedy answers, '
                         '"sampled": the 10 sampled answers}')
def _sampling(answer, predicted, gold):
    """Sampling vs greedy. Checks that the message is one the int4 model got wrong (``predicted``
    against ``gold``), that greedy decoding gave one answer 5 times out of 5 (it is deterministic),
    and that 10 answers were sampled. Which to use in an app, and why, is the learner's reading."""
    i = int(answer["message"])
    if predicted[i] == gold[i]:
        return False, f"test message {i} was classified right: take one the int4 model got wrong"
    greedy, sampled = list(answer["greedy"]), list(answer["sampled"])
    if len(greedy) != 5 or len(sampled) != 10:
        return False, f"generate 5 greedy and 10 sampled answers (got {len(greedy)} and {len(sampled)})"
    if len(set(greedy)) != 1:
        return False, "greedy decoding takes the top token every time: its 5 answers must be identical (do_sample=False?)"
    return True, f"greedy repeated {greedy[0]!r} 5 times; sampling gave {len(set(sampled))} different answers in 10"


@checker_for("06.2", answer='a dict {"size (MB)": the all-4-bit export\'s size, "accuracy": its test accuracy}')
def _all_4bit(answer, default_mb, n_test):
    """All MatMuls in 4 bits. Checks that the all-4-bit export is smaller than the default int4
    export (``default_mb``: it keeps the LM head, q, k, v and down_proj in 8 bits) and that its accuracy
    is one on the ``n_test`` test messages. Whether the 8-bit layers are worth their MB on this
    adapter (one message is 100/n points) is the learner's reading."""
    if not 0 < answer["size (MB)"] < default_mb:
        return False, ("every MatMul in 4 bits should make the export smaller than the default's "
                       f"{default_mb:.0f} MB: were int4_options={{'matmul_mixed_precision': None, 'int8_nodes': None}} passed?")
    if not _accuracy_on(answer["accuracy"], n_test):
        return False, f"{answer['accuracy']} is not an accuracy on the {n_test} test messages"
    return True, (f"{default_mb - answer['size (MB)']:.0f} MB smaller; accuracy {answer['accuracy']:.3f} "
                  f"(one message is {100 / n_test:.1f} points)")


# --------------------------------------------------------------------------- lesson 07


def _delta(layer, name: str):
    """The update ``layer`` adds for adapter ``name`` (PEFT's (α/r)·B·A), flattened, in float64 numpy."""
    return layer.get_delta_weight(name).detach().double().cpu().numpy().ravel()


@checker_for("07.1", answer='a dict {"adapter": the mix\'s name, "tone accuracy", "recipes item F1" (PyTorch), '
                         '"ONNX tone accuracy"}')
def _mix(answer, model, served, n_tone, parts=("tone", "recipes")):
    """Mix two adapters. Checks on the PEFT ``model``: the mix exists, its rank is the sum of the
    parts' ranks (``cat`` stacks them), and in every adapted layer its update is w·(Δ_tone + Δ_recipes)
    for one weight w (a 1:1 mix); that the ``served`` ONNX model loaded it; that the accuracies are
    ones on the ``n_tone`` tone messages. Whether one adapter does both jobs is the learner's reading."""
    import torch

    name = answer["adapter"]
    if name not in model.peft_config:
        return False, f"the PEFT model has no adapter {name!r} (adapters: {list(model.peft_config)})"
    rank = sum(model.peft_config[p].r for p in parts)
    if model.peft_config[name].r != rank:
        return False, f"a 'cat' mix stacks the parts: its rank is the sum of theirs ({rank}); combination_type='cat'?"
    layers = [m for m in model.modules() if hasattr(m, "lora_A") and all(a in m.lora_A for a in (name, *parts))]
    if not layers:
        return False, f"no layer holds {name!r} and {' and '.join(parts)}: mix those adapters"
    with torch.no_grad():
        for layer in layers:
            mix, d1, d2 = (_delta(layer, a) for a in (name, *parts))
            gram = np.array([[d1 @ d1, d1 @ d2], [d2 @ d1, d2 @ d2]])     # least squares: mix ≈ w1·Δ1 + w2·Δ2
            w1, w2 = np.linalg.solve(gram, [d1 @ mix, d2 @ mix])
            residual = np.linalg.norm(mix - w1 * d1 - w2 * d2) / max(np.linalg.norm(mix), 1e-12)
            if residual > 1e-2 or not math.isclose(w1, w2, rel_tol=1e-2):
                return False, "the mix's update should be the sum of the two updates, weighted 1:1"
    if name not in served.adapters:
        return False, f"serve the mix from the ONNX base too: load_adapter({name!r}, its .onnx_adapter file)"
    for key in ("tone accuracy", "ONNX tone accuracy"):
        if not _accuracy_on(answer[key], n_tone):
            return False, f"{key} {answer[key]} is not an accuracy on the {n_tone} tone messages"
    if not 0 <= answer["recipes item F1"] <= 1:
        return False, "item F1 lies between 0 and 1"
    return True, (f"{name!r} is the 1:1 sum of {' and '.join(parts)} (rank {rank}), served from the same ONNX base; "
                  f"tone accuracy {answer['tone accuracy']:.3f}, recipes item F1 {answer['recipes item F1']:.3f}")


@checker_for("07.2", answer='a dict {"rounded": {tensor name: the 4-bit-rounded array}, "accuracy": tone accuracy with it}')
def _lora_4bit(answer, float_params, n_test, bits: int = 4, block: int = 32):
    """4-bit LoRA weights. For every tensor of the float adapter (``float_params``, as read from
    its ``.onnx_adapter``): the rounded one has the same name and shape, at most 2**bits distinct
    values in each block of ``block`` along the input dimension (its first axis, or one block when it
    is shorter), and round-to-nearest error (at most a step, (max - min)/(2**bits - 1), per block);
    the accuracy is one on ``n_test`` messages. Whether the task survives is the learner's reading."""
    rounded = answer["rounded"]
    if set(rounded) != set(float_params):
        return False, "round every tensor of the float adapter, and keep their names"
    for key, v in float_params.items():
        q = np.asarray(rounded[key], dtype=np.float64)
        if q.shape != v.shape:
            return False, f"{key}: shape {q.shape}, the adapter's is {v.shape}"
        size = min(block, v.shape[0])
        if v.shape[0] % size:
            return False, f"{key}: its input dimension {v.shape[0]} does not split into blocks of {size}"
        qb, vb = q.reshape(-1, size, v.shape[1]), np.asarray(v, dtype=np.float64).reshape(-1, size, v.shape[1])
        distinct = (np.diff(np.sort(qb, axis=1), axis=1) != 0).sum(axis=1) + 1
        if distinct.max() > 2**bits:
            return False, (f"{key}: {distinct.max()} different values in one block: {bits} bits hold {2**bits}; quantise "
                           f"in blocks of {size} along the input dimension (the first axis of this array)")
        step = (np.maximum(vb.max(axis=1), 0) - np.minimum(vb.min(axis=1), 0)) / (2**bits - 1)
        if (np.abs(qb - vb).max(axis=1) > 1.25 * step + 1e-7).any():
            return False, f"{key}: some values moved more than one quantisation step: round to the nearest level"
    if not _accuracy_on(answer["accuracy"], n_test):
        return False, f"{answer['accuracy']} is not an accuracy on the {n_test} tone messages"
    errors = [np.linalg.norm(np.asarray(rounded[k]) - v) / np.linalg.norm(v) for k, v in float_params.items()]
    return True, (f"a real {bits}-bit rounding (median relative error {np.median(errors):.1%}); "
                  f"tone accuracy {answer['accuracy']:.3f}")


# --------------------------------------------------------------------------- lesson 08


@checker_for("08.1", answer="a list of the trial numbers a median pruner judging from the first finished trial would stop")
def _strict_pruner(answer, trials, step):
    """A stricter pruner. Recomputes, from the trials' reported scores at ``step``, which trials score
    below the median of the step-``step`` scores of the trials before them (once there is one)."""
    expected, earlier = [], []
    for t in trials:
        score = t.intermediate_values.get(step)
        if score is None:
            continue
        if earlier and score < float(np.median(earlier)):
            expected.append(t.number)
        earlier.append(score)
    if sorted(int(n) for n in answer) != expected:
        return False, (f"compare each trial's score at step {step} with the median of the scores of the trials before it "
                       "(skip a trial with no score at that step); a score equal to the median is not below it")
    return True, f"trials {expected} would have been stopped at step {step}" if expected else "none would have been stopped"


@checker_for("08.2", answer="the name (a row of the forgetting table, not the base model) of the setup you choose")
def _forgetting_budget(answer, forgetting, budget):
    """A forgetting budget. Among the rows of ``forgetting`` but the base model whose general-loss rise is
    within ``budget`` at the interval's upper end (the point estimate where a row has no interval), the
    best test accuracy."""
    forgetting = forgetting.drop(index="base model")
    upper = forgetting["rise high"].fillna(forgetting["rise"])
    within = forgetting[upper <= budget]
    best = within["test accuracy"].max()
    tied = list(within.index[within["test accuracy"] == best])
    if answer not in forgetting.index:
        return False, f"{answer!r} is not a row of the table but the base model: {list(forgetting.index)}"
    if answer not in within.index:
        return False, f"{answer!r} can lose up to {upper[answer]:.3f} nats/token: judge by the interval's upper end"
    if answer not in tied:
        return False, f"{answer!r} is within the budget, but another row within it scores higher on the task"
    return True, f"{answer!r}: test accuracy {best:.3f} within {budget} nats/token"


# --------------------------------------------------------------------------- lesson 09


@checker_for("09.1", answer="the advantage of every answer of the step, in the order of `rewards` (a list or array)")
def _advantages(answer, rewards, group_size):
    """GRPO's advantages by hand: (reward - group mean) / (group std + 1e-4), group by group, recomputed
    with :func:`labkit.train.group_advantages` from the step's logged ``rewards``."""
    from labkit.train import group_advantages

    expected = group_advantages(rewards, group_size).numpy()
    got = np.asarray(answer, dtype=float).ravel()
    if got.shape != expected.shape:
        return False, f"{got.size} advantages for {expected.size} answers: one per answer"
    if np.allclose(got, expected, atol=1e-3):
        return True, f"{int(np.isclose(expected, 0, atol=1e-3).sum())} of {expected.size} answers get advantage 0"
    centred = np.asarray(rewards, dtype=float).reshape(-1, group_size)
    if np.allclose(got, (centred - centred.mean(1, keepdims=True)).ravel(), atol=1e-3):
        return False, "centred on the group mean, but not divided by the group's standard deviation"
    return False, "subtract each *group's* mean (not the whole step's) and divide by that group's std (ddof=1) + 1e-4"


@checker_for("09.2", answer='a dict {"all perfect": n, "all zero": m}: tied prompts by their common score')
def _ties(answer, scores):
    """Ties by kind: among the prompts whose samples all scored the same (``scores``: prompts x k), how
    many scored 1 (all perfect) and how many 0."""
    scores = np.asarray(scores, dtype=float)
    tied = scores[scores.max(1) == scores.min(1)][:, 0]
    expected = {"all perfect": int((tied == 1).sum()), "all zero": int((tied == 0).sum())}
    if {k: int(answer.get(k, -1)) for k in expected} == expected:
        other = len(tied) - sum(expected.values())
        return True, f"{expected}" + (f"; {other} more tied at a partial score" if other else "")
    return False, "a tie is a prompt whose best and worst samples score the same; split those by that score (1 or 0)"
