from nbtools import build, COLAB
cells = [
("md", """
# Lesson 02 — LoRA: train 3% of the weights, keep the rest frozen

**Learning objectives**
- Understand what LoRA adds to a model: a frozen weight matrix **W** plus a small low-rank update **B·A**, scaled by **α / r**.
- Count the trainable parameters for different ranks and target modules, and check the count against a formula.
- Fine-tune SmolLM2-135M-Instruct with LoRA on an extraction task (recipe → JSON list of ingredients) and measure it before and after.
- See what an *adapter* is on disk, load it back, and *merge* it into the base, getting the same outputs.

The skeleton, as in every lesson: *the idea → run it → look at the result → checks → exercises → recap*.
"""),
COLAB,
("md", """
## 1. The idea

A linear layer computes $y = W x$ with a weight matrix $W$ of shape $d \\times k$ ($d$ outputs, $k$ inputs).
Full fine-tuning learns a new $W$: $d \\cdot k$ numbers per layer. **LoRA** (Low-Rank Adaptation, Hu et al. 2021) freezes $W$
and learns a *low-rank* update instead:

$$ y = W x + \\frac{\\alpha}{r}\\, B A\\, x, \\qquad B \\in \\mathbb{R}^{d \\times r},\\; A \\in \\mathbb{R}^{r \\times k},\\; r \\ll \\min(d, k) $$

- $A$ starts random and $B$ starts at zero, so at step 0 the model is exactly the base model.
- Only $A$ and $B$ are trained: $r\\,(d + k)$ numbers instead of $d\\,k$. For a $576 \\times 576$ attention projection and $r = 8$
  that is 9,216 instead of 331,776 (2.8%).
- $\\alpha$ (`lora_alpha`) scales the update; the effective multiplier is $\\alpha / r$ (exercise 1 shows what it does).
- Because $W$ never changes, the trained part is a small separate file, an **adapter**, and it can be *merged* into $W$ after training
  ($W' = W + \\frac{\\alpha}{r} B A$) so that inference costs nothing extra.
"""),
("code", """
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

d, k, r = 576, 576, 8                       # q_proj of SmolLM2-135M, rank 8
fig, ax = plt.subplots(figsize=(8, 3.6))
def box(x, y, w, h, color, label):
    ax.add_patch(Rectangle((x, y), w, h, color=color, alpha=0.6))
    ax.text(x + w / 2, y + h / 2, label, ha="center", va="center", fontsize=10)
box(0, 0, k, d, "tab:gray", f"W (frozen)\\n{d} x {k}\\n{d * k:,} params")
ax.text(k + 40, d / 2, "+", fontsize=22, va="center")
box(k + 110, 0, r * 6, d, "tab:orange", "")                        # B, drawn 6x wider so it is visible
ax.text(k + 110 + r * 3, -40, f"B\\n{d} x {r}", ha="center", va="top", fontsize=10)
ax.text(k + 110 + r * 6 + 25, d / 2, "·", fontsize=26, va="center")
box(k + 110 + r * 6 + 70, d - r * 6, k, r * 6, "tab:blue", "")      # A, drawn 6x taller
ax.text(k + 110 + r * 6 + 70 + k / 2, d - r * 6 - 40, f"A   ({r} x {k})", ha="center", va="top", fontsize=10)
ax.text(k + 110 + r * 6 + 70 + k / 2, d / 3, f"B·A: {r * (d + k):,} trainable params\\n({100 * r * (d + k) / (d * k):.1f}% of W)",
        ha="center", va="center", fontsize=10)
ax.set_xlim(-20, 2 * k + 260); ax.set_ylim(-120, d + 20); ax.set_aspect("equal"); ax.axis("off")
ax.set_title("LoRA: a frozen W plus a trainable low-rank update B·A (scaled by α/r)")
plt.show()
"""),
("md", """
## 2. How many parameters does LoRA train?

It depends on the **rank** $r$ and on **which linear layers** get an adapter (`target_modules`). Each of the model's 30 decoder layers has
four attention projections (`q_proj`, `k_proj`, `v_proj`, `o_proj`) and three MLP projections (`gate_proj`, `up_proj`, `down_proj`);
`"all-linear"` targets all seven (but never the output layer). We ask PEFT itself, on the real model, and check its answer against the formula
$r\\,(d_{in} + d_{out})$ per adapted layer.
"""),
("code", """
import time
import pandas as pd
import torch
from peft import get_peft_model
from labkit import env, models, data, train, evaluate, plots
from labkit.course import record

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
ALL_LINEAR = ATTENTION + ["gate_proj", "up_proj", "down_proj"]     # what "all-linear" resolves to in this model

def lora_params_by_formula(model, r, target_names):
    \"\"\"r * (d_in + d_out) for every Linear layer whose name ends in one of target_names.\"\"\"
    return sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and name.split(".")[-1] in target_names)

scratch, tokenizer = models.load_base()
base_params = train.count_parameters(scratch)["total"]
rows = []
for targets, names in [(ATTENTION, ATTENTION), ("all-linear", ALL_LINEAR)]:
    for r in (4, 8, 16, 64):
        formula = lora_params_by_formula(scratch, r, names)   # count before wrapping: PEFT replaces these layers
        lcfg = train.lora_config(train.TrainConfig(r=r, lora_alpha=2 * r, target_modules=targets))
        peft_model = get_peft_model(scratch, lcfg)
        counts = train.count_parameters(peft_model)
        rows.append({"targets": "attention (q,k,v,o)" if targets == ATTENTION else "all-linear", "r": r,
                     "trainable": counts["trainable"], "% of base": 100 * counts["trainable"] / base_params,
                     "formula r·(d_in+d_out)": formula})
        scratch = peft_model.unload()          # remove the adapters again: back to the plain base model
param_table = pd.DataFrame(rows).set_index(["targets", "r"])
print(f"base model: {base_params:,} parameters")
param_table.style.format({"trainable": "{:,}", "% of base": "{:.2f}%", "formula r·(d_in+d_out)": "{:,}"})
"""),
("md", """
The count grows **linearly in r**: doubling the rank doubles the adapter. Targeting the MLP as well roughly 2.6x the count at the same rank,
because the MLP layers are the wide ones (576 → 1536). Even `r=64` on all linear layers trains about 14% of the parameters, and the usual
`r=8..16` trains 1–4%.

## 3. Run it: LoRA on the `recipes` task

The task: read a recipe sentence, answer with a JSON list of the generic ingredients. The template is
`"Recipe: {recipe}\\nIngredients: {ingredients}"`; everything up to `Ingredients:` is the prompt, the JSON list is the completion
(the loss is computed on the completion only). Sizes come from the active profile.
"""),
("code", """
s = env.settings("recipes")
print("profile:", env.profile(), s)
ds = data.load_dataset("recipes")
def subset(split, n):
    return ds[split] if n is None else ds[split].select(range(min(n, len(ds[split]))))

train_pairs = data.task_pairs("recipes", subset("train", s["train_examples"]))
val_pairs = data.task_pairs("recipes", subset("validation", s["val_examples"]))
test_records = list(subset("test", s["eval_examples"]))
test_pairs = data.task_pairs("recipes", test_records)
print(f"train {len(train_pairs)}, validation {len(val_pairs)}, test {len(test_pairs)} examples")
print("one training pair:", train_pairs[0])
"""),
("md", """
### Before training: the base model

We generate greedily for each test recipe and score the output three ways: is there a valid JSON list at all (**valid JSON**), is it exactly the
gold set of ingredients (**exact match**), and how many items overlap (**item F1**, order ignored). We score the base model's raw output as generously as
possible: the first JSON list anywhere in it counts.
"""),
("code", """
model, tokenizer = models.load_base()
prompts = [p["prompt"] for p in test_pairs]
golds = [r["ingredients"] for r in test_records]

start = time.perf_counter()
base_outputs = evaluate.generate(model, tokenizer, prompts, max_new_tokens=s["max_new_tokens"], batch_size=32)
base_scores = evaluate.extraction_scores(base_outputs, golds)
base_val_loss = evaluate.completion_loss(model, tokenizer, val_pairs)
print(f"base model on {len(prompts)} test recipes ({time.perf_counter() - start:.0f} s): "
      f"valid JSON {base_scores['valid_json']:.0%}, exact match {base_scores['exact_match']:.0%}, item F1 {base_scores['item_f1']:.2f}; "
      f"validation loss {base_val_loss:.3f}")
for o in base_outputs[:3]:
    print(repr(o[:100]))
"""),
("md", """
### Training

`labkit.train.finetune` wraps TRL's `SFTTrainer`: it adds the LoRA adapters (rank 16, α = 32, all linear layers — labkit's defaults),
trains on the completion tokens in fp32 on a CPU, logs the training loss every 2 steps and the validation loss a few times, and saves the adapter.
The plot below updates live. (We train fresh every time the lesson runs; `reuse=True` would load a finished run with the same config and data instead.)
"""),
("code", """
import shutil

cfg = train.TrainConfig(method="lora", r=16, lora_alpha=32, target_modules="all-linear",
                        learning_rate=s["learning_rate"], max_steps=s["max_steps"], batch_size=s["batch_size"],
                        logging_steps=2, eval_steps=max(1, s["max_steps"] // 3), save_steps=s["max_steps"])
output_dir = models.labkit_home() / "runs" / "lesson02-recipes-lora"
shutil.rmtree(output_dir, ignore_errors=True)
result = train.finetune(model, tokenizer, train_pairs, eval_pairs=val_pairs, config=cfg,
                        output_dir=output_dir, resume=False, reuse=False)
lora_model = result.model
print(f"{result.train_seconds:.0f} s for {cfg.max_steps} steps, {result.trained_tokens / result.train_seconds:.0f} trained tokens/s")
"""),
("code", """
ax = plots.loss_curve(result.history, title="LoRA on recipes")
ax.axhline(base_val_loss, color="gray", ls="--", label="validation loss before training")
ax.legend()
plt.show()
final_val_loss = result.eval_losses[-1][1]
print(f"validation loss: {base_val_loss:.3f} before, {final_val_loss:.3f} after")
"""),
("md", """
## 4. Look at the result: before vs after on the test recipes

The same test recipes, the same greedy decoding, now with the adapter. The table gives each model's mean item F1 with a 95% bootstrap interval
(resampling the test examples), so you can see how much the numbers could move with a different sample of recipes.
"""),
("code", """
start = time.perf_counter()
lora_outputs = evaluate.generate(lora_model, tokenizer, prompts, max_new_tokens=s["max_new_tokens"], batch_size=32)
lora_scores = evaluate.extraction_scores(lora_outputs, golds)
print(f"generation with the adapter: {time.perf_counter() - start:.0f} s")
comparison = evaluate.compare(
    {"base": base_scores["f1s"], "LoRA": lora_scores["f1s"]}, metric="item F1",
    extra={"exact match": {"base": base_scores["exact_match"], "LoRA": lora_scores["exact_match"]},
           "valid JSON": {"base": base_scores["valid_json"], "LoRA": lora_scores["valid_json"]},
           "validation loss": {"base": base_val_loss, "LoRA": final_val_loss}})
comparison.round(3)
"""),
("code", """
def short(text, n=70):
    text = " ⏎ ".join(line for line in text.strip().splitlines() if line.strip())
    return text if len(text) <= n else text[:n] + "…"

pd.set_option("display.max_colwidth", 90)
samples = pd.DataFrame({"recipe": [short(r["recipe"], 90) for r in test_records],
                        "gold": [", ".join(r["ingredients"]) for r in test_records],
                        "base output": [short(o) for o in base_outputs],
                        "LoRA output": [short(o) for o in lora_outputs],
                        "LoRA item F1": lora_scores["f1s"]})
samples.head(6)
"""),
("md", """
The base model has never seen this format: it writes a bulleted shopping list with quantities, so nothing parses as a JSON list.
After a couple of minutes of LoRA it answers in the trained format nearly every time, and most ingredients are right. Look at the misses:
some are *normalisation* (`"courgette"` for `"courgettes"`, a specific pasta for the generic `"pasta"`), some are invented items.
More steps and more data reduce both (try the `full` profile on a GPU).

## 5. The adapter on disk

`finetune` saved the adapter with `save_pretrained`. Only the LoRA matrices are in it — the base weights are not copied.
"""),
("code", """
from pathlib import Path

adapter_dir = Path(result.adapter_dir)
files = pd.DataFrame([{"file": f.name, "MB": f.stat().st_size / 1e6} for f in sorted(adapter_dir.iterdir()) if f.is_file()])
base_file = Path(models.base_model_path()) / "model.safetensors"
adapter_mb = (adapter_dir / "adapter_model.safetensors").stat().st_size / 1e6
base_mb = base_file.stat().st_size / 1e6
print(f"adapter weights: {adapter_mb:.1f} MB   base model.safetensors: {base_mb:.0f} MB   -> {100 * adapter_mb / base_mb:.1f}% of the base")
files.round(3)
"""),
("md", """
`adapter_config.json` records the base model, the rank, α and the target modules; `labkit_run.json` and `README.md` (a model card) record the
training config and result. To use the adapter, load the base model and put the adapter on top with PEFT's `PeftModel.from_pretrained`.
It must give **the same logits** as the model we just trained:
"""),
("code", """
from peft import PeftModel

@torch.no_grad()
def logits_on(m, texts):
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(m.device)
    return m(**enc).logits.float().cpu()

check_texts = [p["prompt"] + p["completion"] for p in test_pairs[:4]]
fresh_base, _ = models.load_base()
reloaded = PeftModel.from_pretrained(fresh_base, adapter_dir)
reloaded.eval()
trained_logits = logits_on(lora_model, check_texts)
reloaded_logits = logits_on(reloaded, check_texts)
reload_diff = (trained_logits - reloaded_logits).abs().max().item()
print(f"max |trained - reloaded| logit difference: {reload_diff:.2e}")
"""),
("md", """
## 6. Merging: fold B·A into W

`merge_and_unload()` computes $W' = W + \\frac{\\alpha}{r} B A$ for every adapted layer and removes the LoRA modules: the result is a plain
model of the base's size and architecture. Same outputs (up to float rounding), no extra matrix products at inference, and any tool that
reads ordinary checkpoints (ONNX export in lesson 06, llama.cpp, vLLM) can use it. We merge the reloaded copy, so the trained model keeps its adapter.
"""),
("code", """
merged = reloaded.merge_and_unload()
print(type(merged).__name__, f"{train.count_parameters(merged)['total']:,} parameters (base: {base_params:,})",
      "| LoRA modules left:", sum("lora" in n for n, _ in merged.named_modules()))
merged_logits = logits_on(merged, check_texts)
merge_diff = (merged_logits - trained_logits).abs().max().item()
print(f"max |merged - adapter| logit difference: {merge_diff:.2e} (logits themselves reach {trained_logits.abs().max():.0f}: "
      f"float32 rounding of W·x + B·A·x vs (W + B·A)·x)")

N_GREEDY = 6
start = time.perf_counter()
adapter_greedy = evaluate.generate(lora_model, tokenizer, prompts[:N_GREEDY], max_new_tokens=s["max_new_tokens"], batch_size=N_GREEDY)
adapter_s = time.perf_counter() - start
start = time.perf_counter()
merged_greedy = evaluate.generate(merged, tokenizer, prompts[:N_GREEDY], max_new_tokens=s["max_new_tokens"], batch_size=N_GREEDY)
merged_s = time.perf_counter() - start
same_greedy = sum(a == b for a, b in zip(adapter_greedy, merged_greedy))
print(f"greedy outputs identical for {same_greedy} of {N_GREEDY} prompts; generation time adapter {adapter_s:.1f} s vs merged {merged_s:.1f} s")
"""),
("md", """
**Merge or keep the adapter separate?**

| merge (`merge_and_unload`) | keep the adapter separate |
|---|---|
| one model to deploy, no adapter overhead per token | one base in memory, many small adapters (one per task or customer) switched at runtime — lesson 07 |
| needed by tools that only read plain checkpoints (export, other runtimes) | a few MB to ship per task instead of a whole model |
| the adapter can no longer be switched off or swapped | you can keep training the adapter, or compare with and without it |

Merging into a *quantised* base (lesson 03) is not exact: the 4-bit weights would have to be de-quantised first.

## 7. Checks
"""),
("code", """
margin = lora_scores["item_f1"] - base_scores["item_f1"]
assert margin >= 0.3, f"LoRA should beat the base clearly on item F1: {lora_scores['item_f1']:.2f} vs {base_scores['item_f1']:.2f}"
assert lora_scores["valid_json"] >= 0.8, f"the fine-tuned model should answer in JSON: {lora_scores['valid_json']:.0%}"
assert final_val_loss < base_val_loss, (final_val_loss, base_val_loss)
assert (param_table["trainable"] == param_table["formula r·(d_in+d_out)"]).all(), "PEFT's count differs from r*(d_in+d_out)"
assert torch.allclose(trained_logits, reloaded_logits, atol=1e-5), f"reloaded adapter differs: {reload_diff:.2e}"
# fp32 (CPU): only float rounding separates merged and unmerged. In bf16/fp16 (GPU) the merged W + BA is rounded to 16 bits.
fp32 = lora_model.dtype == torch.float32
assert merge_diff < (1e-3 if fp32 else 0.5), f"merged model differs: {merge_diff:.2e}"
assert same_greedy >= N_GREEDY - (0 if fp32 else 1), "merged and adapter models should decode the same text"
assert adapter_mb < 0.1 * base_mb, (adapter_mb, base_mb)
record(base_item_f1=base_scores["item_f1"], lora_item_f1=lora_scores["item_f1"], lora_exact_match=lora_scores["exact_match"],
       lora_valid_json=lora_scores["valid_json"], val_loss_before=base_val_loss, val_loss_after=final_val_loss,
       train_seconds=result.train_seconds, adapter_mb=adapter_mb, adapter_pct_of_base=100 * adapter_mb / base_mb,
       merge_max_logit_diff=merge_diff)
print(f"LoRA beats the base by {margin:.2f} item F1; reload and merge reproduce the trained model.")
"""),
("md", """
## Exercises

1. **What does α do?** Keep the rank, multiply `lora_alpha` by 4. What happens to the scale α/r, and to the size of the update $\\Delta W = \\frac{\\alpha}{r} B A$?
   What would it do to the trained model's outputs? (Hint: PEFT's `rescale_adapter_scale` multiplies the scale of a trained adapter.)
2. **Rank and targets.** Compare an adapter with `r=4` on the attention projections only against `r=64` on all linear layers:
   trainable parameters and the size of the saved file. (No training needed: an untrained adapter has the same size.)

### Solutions
"""),
("code", """
# 1. alpha is a multiplier on the update. Look at one trained layer:
layer = lora_model.base_model.model.model.layers[0].self_attn.q_proj
A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
scale = layer.scaling["default"]
delta_W = (B @ A) * scale
print(f"r={cfg.r}, alpha={cfg.lora_alpha}: scale alpha/r = {scale}; A {tuple(A.shape)}, B {tuple(B.shape)}")
print(f"|W| = {layer.base_layer.weight.norm():.2f}, |ΔW| = {delta_W.norm():.3f} (alpha x4 -> scale {4 * scale}, |ΔW| = {4 * delta_W.norm():.3f})")

# The same trained B, A with the scale multiplied: x0 is the base model, x1 as trained, x4 as if alpha were 4x.
from peft.helpers import rescale_adapter_scale
few_val = val_pairs[:8]
alpha_rows = []
for mult in (0.0, 1.0, 4.0):
    with rescale_adapter_scale(lora_model, mult):
        alpha_rows.append({"scale multiplier": mult, "alpha/r": scale * mult,
                           "validation loss": evaluate.completion_loss(lora_model, tokenizer, few_val)})
pd.DataFrame(alpha_rows).round(3)
"""),
("md", """
Multiplying α by 4 multiplies $\\Delta W$ by 4. Applied *after* training it overshoots: the update the optimiser found is now 4x too big and the
validation loss goes up. Applied *before* training, a larger α acts much like a larger learning rate for the adapter, which is why α and the learning
rate are tuned together; a common default is α = 2r (what labkit uses: r=16, α=32), and `use_rslora=True` scales by α/√r so that changing r
does not change the effective step size.
"""),
("code", """
# 2. Parameter count and file size for two adapter shapes (untrained: same size as trained).
import tempfile
size_rows = []
for r, targets in [(4, ATTENTION), (64, "all-linear")]:
    pm = get_peft_model(scratch, train.lora_config(train.TrainConfig(r=r, lora_alpha=2 * r, target_modules=targets)))
    with tempfile.TemporaryDirectory() as tmp:
        pm.save_pretrained(tmp)
        mb = (Path(tmp) / "adapter_model.safetensors").stat().st_size / 1e6
    size_rows.append({"r": r, "targets": "attention" if targets == ATTENTION else targets,
                      "trainable": train.count_parameters(pm)["trainable"], "adapter MB": mb, "% of base file": 100 * mb / base_mb})
    scratch = pm.unload()
pd.DataFrame(size_rows).round(2)
"""),
("md", """
Sizes follow the parameter count exactly (4 bytes per fp32 parameter): from about 2 MB to about 78 MB. Even the big adapter is a seventh of the
base model, and a typical one (r=16, all-linear, the one trained above) is under 4%.

## Recap

- LoRA freezes $W$ and trains $B A$ with $r(d_{in} + d_{out})$ parameters per layer: linear in the rank, a few percent of the model.
- A couple of minutes of LoRA on a CPU turned a model that could not do the task into one that answers in valid JSON with most ingredients right.
- The adapter is a small file; loaded onto a fresh base it reproduces the trained model exactly, and merging folds it into the weights with
  the same outputs.
- α scales the update (α/r); tune it together with the learning rate.

**Next:** lesson 03 shrinks the *frozen* part too: QLoRA stores the base in 4 bits and trains LoRA on top.
"""),
]
build(cells, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "notebooks" / "02_lora.ipynb"))
