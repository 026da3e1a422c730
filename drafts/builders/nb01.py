from nbtools import build, COLAB
cells = [
("md", """
# Lesson 01 — Why fine-tune? Prompting vs fine-tuning, measured

**Learning objectives**
- Know the three ways to make a pretrained model do *your* task: a **zero-shot** prompt, a **few-shot** prompt (examples in the prompt), and **fine-tuning**.
- Measure each on the same held-out test set: **accuracy**, **prompt tokens per request** (what you pay for, every request) and **latency**.
- Decide with a checklist when fine-tuning is worth its costs.

The task: read a short message (a support ticket, a review, a chat line) and name its **tone**: `joy`, `anger`, `sadness`, `fear` or `neutral`.
It is the "phrase → tone" example of Microsoft's *EdgeAI for Beginners* fine-tuning module, with a dataset that ships with this course.
"""),
COLAB,
("md", """
## 1. The idea: three ways to get a model to do your task

| approach | what you change | cost per request | up-front cost |
|---|---|---|---|
| zero-shot prompt | an instruction in the prompt | instruction tokens | minutes of prompt writing |
| few-shot prompt (in-context learning) | instruction + *k* solved examples in every prompt | *k* examples' tokens, **every request** | choosing good examples |
| retrieval-augmented generation (RAG) | relevant documents fetched into the prompt | document tokens | an index of your documents |
| fine-tuning (here: LoRA) | the model's weights | just the input | data, compute, hosting an adapter |

RAG adds *knowledge* the model lacks (facts, documents); fine-tuning changes *behaviour* (a format, a style, a labelling convention).
Tone labelling is behaviour, so the contest here is prompting vs fine-tuning. The rule from the source courses:
**try prompting first; fine-tune when the benefits exceed the costs.** Let's get the numbers.
"""),
("code", """
import statistics
import time

import matplotlib.pyplot as plt
import pandas as pd

from labkit import data, env, evaluate, models, plots, train
from labkit.course import record

s = env.settings("tone")          # this profile's sizes: examples, steps, batch size, ...
print("profile:", env.profile(), s)
ds = data.load_dataset("tone")
info = data.dataset_info("tone")
labels = info["labels"]
ds
"""),
("code", """
pd.DataFrame(ds["train"][:8])
"""),
("code", """
counts = pd.Series(ds["train"]["tone"]).value_counts().reindex(labels)
plots.bar_chart(counts.to_dict(), ylabel="training examples", title="Label balance (train split)", fmt="{:.0f}");
"""),
("md", """
## 2. How we measure: label scoring

Generating free text and parsing it ("The tone is... probably anger?") is slow and brittle. Instead we ask the model one question per
message: *at the answer position, which label's first token gets the highest score?* One forward pass, no parsing, always one of the
five labels. Every approach below is scored this way on the same **test split**, which no approach has seen.
"""),
("code", """
model, tokenizer = models.load_base()
test = list(ds["test"])[: s["eval_examples"]]
gold = [r["tone"] for r in test]
print(f"{len(test)} test messages; majority-class accuracy would be {counts.max() / counts.sum():.2f}")

results = {}   # approach -> measured numbers


def measure(name, model, prompts, prefix=" ", shared_prefix="", n_latency=10):
    \"\"\"Accuracy on the test split, mean prompt tokens, and median latency of one request.\"\"\"
    predicted = evaluate.classify(model, tokenizer, prompts, labels, prefix=prefix, shared_prefix=shared_prefix)
    report = evaluate.classification_report(gold, predicted, labels)
    tokens = statistics.mean(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    latencies = []
    for p in prompts[:n_latency]:  # one request at a time, full prompt: what a user waits for
        start = time.perf_counter()
        evaluate.last_token_logits(model, tokenizer, [p])
        latencies.append(time.perf_counter() - start)
    results[name] = {"accuracy": report["accuracy"], "prompt tokens": tokens,
                     "latency ms": 1000 * statistics.median(latencies), "correct": report["correct"],
                     "report": report}
    print(f"{name}: accuracy {report['accuracy']:.3f}, {tokens:.0f} prompt tokens, "
          f"{results[name]['latency ms']:.0f} ms per request")
"""),
("md", """
## 3. Approach A — zero-shot: just ask

An instruct model follows instructions, so we write one and use the model's chat template. The answer position is the start of the
assistant's turn.
"""),
("code", """
instruction = f"Classify the tone of the message as one of: {', '.join(labels)}. Answer with one word."


def chat_prompt(phrase, shots=()):
    messages = [{"role": "system", "content": instruction}]
    for shot in shots:
        messages += [{"role": "user", "content": shot["phrase"]}, {"role": "assistant", "content": shot["tone"]}]
    messages.append({"role": "user", "content": phrase})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


zero_shot = [chat_prompt(r["phrase"]) for r in test]
print(zero_shot[0])
measure("zero-shot prompt", model, zero_shot, prefix="")
"""),
("md", """
## 4. Approach B — few-shot: show examples in the prompt

Put *k* solved examples from the training split in front of every message (one per label, in turn). The model can copy the pattern:
*in-context learning*. Every request now carries those examples.

(To evaluate quickly we run the shared part of the prompt once and reuse its key/value cache: `shared_prefix=`. The scores are exactly
the same as running the full prompt; the latency column still times the full prompt, as a plain deployment would.)
"""),
("code", """
def pick_shots(k, seed=0):
    by_label = {label: [r for r in ds["train"] if r["tone"] == label] for label in labels}
    return [by_label[labels[i % len(labels)]][seed + i // len(labels)] for i in range(k)]


def few_shot_prompts(k):
    shots = pick_shots(k)
    prompts = [chat_prompt(r["phrase"], shots) for r in test]
    prefix = chat_prompt("", shots)
    prefix = prefix[: prefix.rindex("<|im_start|>user")]   # everything before this message's turn
    return prompts, prefix


few_shot, shared = few_shot_prompts(s["few_shot_k"])
print(few_shot[0])
measure(f"few-shot prompt (k={s['few_shot_k']})", model, few_shot, prefix="", shared_prefix=shared)
"""),
("md", """
For reference, the base model with the bare task format we will fine-tune on, `"{phrase} -> {tone}"`, and no instruction:
"""),
("code", """
template_prompts = [p["prompt"] for p in data.task_pairs("tone", test)]
print(repr(template_prompts[0]))
measure("bare template, no fine-tuning", model, template_prompts)
"""),
("md", """
## 5. Approach C — fine-tune with LoRA

Now we change the model instead of the prompt. The training data are the same kind of pairs, written with an Olive-style text template
`"{phrase} -> {tone}"`: the prompt is `"{phrase} ->"` and the completion `" {tone}"`; the loss is computed on the completion only.
LoRA (lesson 02) trains small low-rank matrices next to the frozen weights. Every setting is printed at the start of the run;
on a CPU labkit trains in fp32 with gradient checkpointing off.
"""),
("code", """
train_records = list(ds["train"])[: s["train_examples"]]
train_pairs = data.task_pairs("tone", train_records)
print(len(train_pairs), "training pairs, e.g.", train_pairs[0])
config = train.TrainConfig(max_steps=s["max_steps"], batch_size=s["batch_size"], learning_rate=s["learning_rate"],
                           r=s["r"], lora_alpha=2 * s["r"], eval_steps=None, save_steps=s["max_steps"])
result = train.finetune(model, tokenizer, train_pairs, None, config, resume=False)
print(f"trained {result.trained_tokens} tokens in {result.train_seconds:.0f} s "
      f"({result.trained_tokens / result.train_seconds:.0f} tokens/s); adapter saved to {result.adapter_dir}")
"""),
("code", """
plots.loss_curve(result.history, title="LoRA on tone: training loss");
"""),
("code", """
finetuned = result.model
measure("LoRA fine-tune", finetuned, template_prompts)
"""),
("md", """
## 6. Look at the result
"""),
("code", """
names = list(results)
table = evaluate.compare({n: results[n]["correct"] for n in names}, metric="accuracy",
                         extra={"prompt tokens": {n: results[n]["prompt tokens"] for n in names},
                                "latency ms": {n: results[n]["latency ms"] for n in names}})
table.round(3)
"""),
("code", """
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 3.8))
short = {n: n.split(" (")[0].replace("bare template, no fine-tuning", "bare template") for n in names}
acc = table["accuracy"]
ax1.bar([short[n] for n in names], acc, yerr=[acc - table["95% CI low"], table["95% CI high"] - acc],
        capsize=4, color=plt.cm.tab10.colors[:len(names)])
ax1.set_title("test accuracy (95% CI)"); ax1.set_ylim(0, 1)
plots.bar_chart({short[n]: results[n]["prompt tokens"] for n in names}, "tokens", "prompt tokens per request", ax=ax2, fmt="{:.0f}")
plots.bar_chart({short[n]: results[n]["latency ms"] for n in names}, "ms", "latency per request", ax=ax3, fmt="{:.0f}")
for ax in (ax1, ax2, ax3):
    ax.tick_params(axis="x", rotation=25)
plt.tight_layout()
"""),
("code", """
report = results["LoRA fine-tune"]["report"]
plots.confusion_matrix(report["confusion_matrix"], labels, title="LoRA fine-tune on the test split")
pd.DataFrame(report["per_class"]).T.round(2)
"""),
("md", """
## 7. Checks

The lesson's claim: on this task, a quick LoRA fine-tune beats the best prompting approach by a wide margin (at least 15 accuracy
points) *and* needs a shorter prompt than few-shot prompting.
"""),
("code", """
few_name = f"few-shot prompt (k={s['few_shot_k']})"
prompting = {n: r["accuracy"] for n, r in results.items() if n != "LoRA fine-tune"}
best_name = max(prompting, key=prompting.get)
ft = results["LoRA fine-tune"]
print(f"best prompting approach: {best_name} ({prompting[best_name]:.3f}); LoRA: {ft['accuracy']:.3f}")
assert ft["accuracy"] >= prompting[best_name] + 0.15, "fine-tuning should beat the best prompt by 15 points"
assert ft["prompt tokens"] < results[few_name]["prompt tokens"]
record(lora_accuracy=ft["accuracy"], best_prompt_accuracy=prompting[best_name],
       few_shot_prompt_tokens=results[few_name]["prompt tokens"], lora_prompt_tokens=ft["prompt tokens"],
       train_seconds=result.train_seconds)
"""),
("md", """
## 8. The decision checklist

Fine-tuning won on quality *and* on cost per request here. That is not automatic. Before you fine-tune, go through:

1. **The use case.** Is the problem *behaviour* (format, style, a labelling convention, a narrow task), where fine-tuning shines,
   or *knowledge* (facts that change, your documents), where retrieval (RAG) is the better tool?
2. **Alternatives tried first.** A clear instruction; few-shot examples; a bigger or newer base model; retrieval. Measure them as above.
3. **Costs.** *Data*: hundreds to thousands of clean, consistent examples, with 10–20% held out. *Compute*: the training run below.
   *Hosting*: the adapter is small, but you now serve a custom model. *Effort*: evaluation and re-training when data drift.
4. **Benefits.** *Quality* (accuracy above), *cost per request* (prompt tokens above), *latency*, and the ability to run a small model
   locally instead of a large one remotely.

Your numbers from this machine:
"""),
("code", """
zero, few = results["zero-shot prompt"], results[few_name]
print(f"data:      {len(train_pairs)} labelled examples used for training")
print(f"compute:   {result.train_seconds / 60:.1f} min of training on {env.device()} ({result.trained_tokens} tokens)")
print(f"quality:   {ft['accuracy']:.0%} vs {prompting[best_name]:.0%} for the best prompt ({best_name})")
print(f"per call:  {ft['prompt tokens']:.0f} prompt tokens vs {few['prompt tokens']:.0f} few-shot "
      f"({few['prompt tokens'] / ft['prompt tokens']:.1f}x fewer), {ft['latency ms']:.0f} ms vs {few['latency ms']:.0f} ms")
"""),
("md", """
## Exercises

1. **Vary k.** Does few-shot prompting improve with more examples? Measure k = 1 and k = 10.
2. **Less data.** Fine-tune on only 50 training examples (same settings otherwise). How much of the gain remains?

### Solutions
"""),
("code", """
# 1. k = 1 and k = 10 (scored with the cached prefix: cheap). LoRA wrapped the base model in place,
#    so we switch the adapter off to get the original model back.
for k in (1, 10):
    prompts_k, shared_k = few_shot_prompts(k)
    with finetuned.disable_adapter():
        predicted = evaluate.classify(finetuned, tokenizer, prompts_k, labels, prefix="", shared_prefix=shared_k)
    tokens_k = statistics.mean(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts_k)
    print(f"k={k:2d}: accuracy {evaluate.classification_report(gold, predicted, labels)['accuracy']:.3f}, {tokens_k:.0f} prompt tokens")
"""),
("code", """
# 2. 50 training examples: a fresh base model, a short run
small_model, _ = models.load_base()
small_pairs = data.task_pairs("tone", list(ds["train"])[:50])
small_config = train.TrainConfig(max_steps=14, batch_size=8, warmup_steps=2,   # about two passes over 50
                                 learning_rate=s["learning_rate"], r=s["r"], lora_alpha=2 * s["r"],
                                 eval_steps=None, save_steps=1000)
small = train.finetune(small_model, tokenizer, small_pairs, None, small_config, resume=False, live_plot=False)
predicted = evaluate.classify(small.model, tokenizer, template_prompts, labels)
small_acc = evaluate.classification_report(gold, predicted, labels)["accuracy"]
print(f"50 examples: accuracy {small_acc:.3f}; {len(train_pairs)} examples: {ft['accuracy']:.3f}; "
      f"best prompt: {prompting[best_name]:.3f}")
"""),
("md", """
Compare the three numbers: how much of the fine-tuning gain did 50 examples buy? Quality of data matters more than quantity,
but a model this small needs a few hundred consistent examples before it learns a labelling convention reliably.

## Recap

- Prompting is the cheapest thing to try, and the right first step. On this task a 135M instruct model barely beats chance with it.
- A few minutes of LoRA fine-tuning on several hundred labelled examples won by a wide margin, with a prompt several times shorter.
- Decide with numbers: quality, tokens per request, latency, and the one-off costs of data and compute.

**Next:** lesson 02 opens up LoRA: what the low-rank matrices are, how many parameters they add, and how to save, reload and merge them.
"""),
]
build(cells, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "notebooks" / "01_why_finetune.ipynb"))
