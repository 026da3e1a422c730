from nbtools import build, COLAB
cells = [
("md", """
# Lesson 06 — ONNX deployment: merge, export, check, measure, chat

**Learning objectives**
- Know what the onnxruntime-genai *model builder* produces: an ONNX graph with a KV cache, 4-bit `MatMulNBits` weights,
  a `genai_config.json` and the tokenizer, and where such a folder runs.
- Merge the `tone` LoRA adapter from lesson 01 into the base and export it twice: **fp32** and **int4**.
- Prove the export is right (**parity** with PyTorch) and measure what int4 costs in **task accuracy**.
- Measure **speed and size**: time to first token, prompt and decode tokens/s, MB on disk, for PyTorch, ONNX fp32 and ONNX int4.
- **Stream** a chat from the int4 model, and see honestly what fine-tuning on one task did to its chat behaviour.
"""),
COLAB,
("md", """
## 1. The idea: from a PyTorch checkpoint to a deployable folder

Training needs PyTorch, PEFT and autograd; *serving* needs none of that. A deployed model should be one self-contained folder that a
small runtime loads on a laptop CPU, a GPU or an NPU. The **onnxruntime-genai model builder**
(`python -m onnxruntime_genai.models.builder`, the same step `olive auto-opt` runs in Microsoft Olive's flow) writes that folder:

| file | what it holds |
|---|---|
| `model.onnx` (+ `model.onnx.data`) | the network as a graph of ONNX operators. Each layer's attention is one fused `GroupQueryAttention` op (rotary embeddings, grouped K/V heads), and the **KV cache is explicit**: `past_key_values.N.key/value` are graph *inputs* and `present.N.key/value` are *outputs*, so each decoding step feeds back what the last one produced and only processes the new token. |
| weights | fp32: plain tensors. int4: every big `MatMul` becomes a **`MatMulNBits`** op holding 4-bit weights, de-quantised block by block on the fly. |
| `genai_config.json` | how to run it: context length, EOS / pad token ids, the default **search** (greedy or sampling, `max_length`, `temperature`, `top_p`...), the execution provider and session options. |
| `tokenizer.json`, `tokenizer_config.json`, chat template | the tokenizer, re-implemented in C++ by onnxruntime-genai (no Python, no `transformers` at run time). |

**Block-wise 4-bit weights.** Each row of a weight matrix is cut into blocks of $B$ values (here $B=32$); a block stores 4-bit integers
$q_i \\in \\{0,\\dots,15\\}$, one scale $s$ and one 4-bit zero point $z$:

$$w_i \\approx s\\,(q_i - z) \\qquad\\text{storage} \\approx 4 + \\tfrac{32}{B} + \\tfrac{4}{B} \\approx 5.1 \\text{ bits per weight instead of } 32.$$

Small blocks follow the weights' local range closely, so the error stays small; *how* $s$ and $z$ are chosen (round-to-nearest or a
search such as `k_quant`), whether the activations are multiplied in fp32 or int8 (`accuracy_level`), and which layers stay in higher
precision (the LM head is the most sensitive) are the knobs. `labkit.export.DEFAULT_INT4_OPTIONS` documents the ones this course uses.

**Where the folder runs:** onnxruntime-genai on CPU, CUDA, DirectML (Windows GPUs/NPUs) and WebGPU, from Python, C#, C++ or Java;
apps such as **Foundry Local** and the **AI Toolkit** for VS Code load the same kind of folder. An fp32 export should reproduce PyTorch
to rounding error; an int4 export is an approximation, so we **measure** it on the task instead of assuming it is fine.
(With Olive on this model, a default int4 build drifted badly: logits off by up to 6.8. So: measure.)
"""),
("md", """
## 2. Run it

### 2.1 The fine-tuned model from lesson 01

The same code as lesson 01, so the run has the same *fingerprint* and `reuse=True` loads the cached adapter
(if you have not run lesson 01, it trains it now: a few minutes on a CPU).
"""),
("code", """
import json, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import matplotlib.pyplot as plt

from labkit import data, env, evaluate, export, models, plots, train
from labkit.course import record

lesson_start = time.perf_counter()
"""),
("code", """
from labkit import data, env, models, train
s = env.settings("tone")
ds = data.load_dataset("tone")
info = data.dataset_info("tone")
train_records = list(ds["train"])[: s["train_examples"]]
train_pairs = data.task_pairs("tone", train_records)
config = train.TrainConfig(max_steps=s["max_steps"], batch_size=s["batch_size"], learning_rate=s["learning_rate"],
                           r=s["r"], lora_alpha=2 * s["r"], eval_steps=None, save_steps=s["max_steps"])
model, tokenizer = models.load_base()
result = train.finetune(model, tokenizer, train_pairs, None, config, reuse=True)
"""),
("code", """
base_dir = models.base_model_path()
adapter_dir = result.adapter_dir
labels = info["labels"]
test = list(ds["test"])
test_prompts = [p["prompt"] for p in data.task_pairs("tone", test)]
y_true = [r["tone"] for r in test]
print("base:   ", base_dir)
print("adapter:", adapter_dir)
print("a test prompt:", repr(test_prompts[0]), "->", y_true[0])
"""),
("md", """
Before merging, one reply from the **base** model (adapter switched off) to a general chat message, so that later we can see what
fine-tuning changed. (`disable_adapter()` runs the same weights without the LoRA update.)
"""),
("code", """
chat_message = "Give me two short tips for a job interview."

def torch_chat(m, message, max_new_tokens=48):
    text = tokenizer.apply_chat_template([{"role": "user", "content": message}], add_generation_prompt=True, tokenize=False)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = m.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)

with result.model.disable_adapter():
    base_reply = torch_chat(result.model, chat_message)
print("BASE model:", base_reply)
"""),
("md", """
### 2.2 Merge and export

`export_onnx(base, adapter_dir=..., precision=...)` loads the base in fp32, adds the adapter and **merges** it
($W \\leftarrow W + \\tfrac{\\alpha}{r} BA$, so the exported graph needs no LoRA ops and no PEFT), then runs the builder. Builds are cached:
the folder's `labkit_export.json` records the inputs (model and adapter files, precision, options, versions), and an unchanged
export is returned at once. For the PyTorch side of every comparison we merge the same way, in memory.
"""),
("code", """
export_seconds = {}
onnx_dirs = {}
for precision in ("fp32", "int4"):
    start = time.perf_counter()
    onnx_dirs[precision] = export.export_onnx(base_dir, adapter_dir=adapter_dir, precision=precision)
    export_seconds[precision] = time.perf_counter() - start
    print(f"{precision}: {onnx_dirs[precision]}  ({export_seconds[precision]:.1f} s{', cached' if export_seconds[precision] < 2 else ''})")
print("int4 builder options:", json.loads((onnx_dirs["int4"] / export.MANIFEST).read_text())["builder_options"])

merged = result.model.merge_and_unload()   # PyTorch: the same merge, in memory
merged.eval();
"""),
("code", """
rows = []
for precision, folder in onnx_dirs.items():
    for f in sorted(folder.iterdir()):
        rows.append({"export": precision, "file": f.name, "MB": round(export.folder_size_mb(f), 2)})
files = pd.DataFrame(rows).pivot(index="file", columns="export", values="MB").fillna("")
torch_mb = sum(export.folder_size_mb(f) for f in Path(base_dir).glob("*.safetensors"))  # the merged model has the same tensors
sizes_mb = {"PyTorch fp32 (safetensors)": torch_mb, "ONNX fp32": export.folder_size_mb(onnx_dirs["fp32"]),
            "ONNX int4": export.folder_size_mb(onnx_dirs["int4"])}
display(files)
pd.Series(sizes_mb, name="MB on disk").round(1).to_frame()
"""),
("md", """
### 2.3 Look inside

The graph's inputs and outputs show the explicit KV cache; counting operator types shows the fused attention and, in the int4
model, the `MatMulNBits` ops with their `bits`: labkit's default options keep the LM head and the most sensitive layers at 8 bits
(section 2.6 shows why).
"""),
("code", """
import onnx
from collections import Counter

graphs = {p: onnx.load(str(d / "model.onnx"), load_external_data=False).graph for p, d in onnx_dirs.items()}
g = graphs["int4"]
print("inputs: ", [i.name for i in g.input][:4], "...", f"({len(g.input)} in all)")
print("outputs:", [o.name for o in g.output][:3], "...", f"({len(g.output)} in all)")

ops = pd.DataFrame({p: Counter(n.op_type for n in gr.node) for p, gr in graphs.items()}).fillna(0).astype(int)
ops = ops[(ops.index.isin(["GroupQueryAttention", "MatMul", "MatMulNBits", "Gather", "GatherBlockQuantized",
                           "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization"]))]
nbits = Counter(next(a.i for a in n.attribute if a.name == "bits") for n in g.node if n.op_type == "MatMulNBits")
display(ops)
print("MatMulNBits by bits:", dict(nbits))
"""),
("code", """
cfg = json.loads((onnx_dirs["int4"] / "genai_config.json").read_text())
print(json.dumps({"context_length": cfg["model"]["context_length"], "eos_token_id": cfg["model"]["eos_token_id"],
                  "pad_token_id": cfg["model"]["pad_token_id"], "search": cfg["search"]}, indent=1))
"""),
("md", """
### 2.4 Parity: does the ONNX model compute what PyTorch computes?

`export.parity` feeds the *same token ids* to both sides and compares the logits at the last prompt position (max absolute
difference) and greedy decoding for 16 tokens. We use a few tone prompts (the format the model was tuned on) and two chat prompts
(longer answers, so more tokens to compare).
"""),
("code", """
chat_prompts = [tokenizer.apply_chat_template([{"role": "user", "content": m}], add_generation_prompt=True, tokenize=False)
                for m in ("What is the capital of France?", chat_message)]
parity_prompts = test_prompts[:4] + chat_prompts
onnx_models = {p: export.GenAIModel(d) for p, d in onnx_dirs.items()}

par = {p: export.parity(merged, tokenizer, onnx_models[p], parity_prompts, max_new_tokens=16) for p in onnx_models}
pd.DataFrame([{"prompt": r["prompt"][-40:].replace("\\n", " "), **{f"{p} max|Δlogit|": par[p]["prompts"][i]["max_abs_diff"]
               for p in par}, **{f"{p} greedy match": par[p]["prompts"][i]["greedy_match"] for p in par}}
              for i, r in enumerate(par["fp32"]["prompts"])]).round(5)
"""),
("code", """
for p in par:
    print(f"ONNX {p}: max |Δlogit| = {par[p]['max_abs_diff']:.2e}, greedy tokens identical: {par[p]['greedy_match']:.0%}")
"""),
("md", """
### 2.5 Task accuracy: PyTorch vs ONNX fp32 vs ONNX int4

Logit differences tell us *that* int4 differs; the question that matters is whether it still does the **task**. We classify the whole
`tone` test split by **label scoring** on all three: the prompt `"{phrase} ->"`, and the label whose first token (`" joy"`, `" anger"`, ...)
gets the highest logit at the last position. PyTorch uses `labkit.evaluate.classify`; the ONNX side does the same with
`GenAIModel.logits`, on the same token ids.
"""),
("code", """
label_ids = evaluate.label_token_ids(tokenizer, labels)

def onnx_classify(onnx_model, prompts):
    preds = []
    for p in prompts:
        logits = onnx_model.logits(tokenizer(p, add_special_tokens=False)["input_ids"])  # last position, [vocab]
        preds.append(labels[int(np.argmax(logits[label_ids]))])
    return preds

predictions, eval_seconds = {}, {}
start = time.perf_counter()
predictions["PyTorch fp32"] = evaluate.classify(merged, tokenizer, test_prompts, labels)
eval_seconds["PyTorch fp32"] = time.perf_counter() - start
for p in ("fp32", "int4"):
    start = time.perf_counter()
    predictions[f"ONNX {p}"] = onnx_classify(onnx_models[p], test_prompts)
    eval_seconds[f"ONNX {p}"] = time.perf_counter() - start

accuracy = {k: evaluate.classification_report(y_true, v, labels)["accuracy"] for k, v in predictions.items()}
agree = {k: np.mean([a == b for a, b in zip(v, predictions["PyTorch fp32"])]) for k, v in predictions.items()}
pd.DataFrame({"accuracy": accuracy, "same prediction as PyTorch": agree, "seconds": eval_seconds}).round(3)
"""),
("md", """
### 2.6 Why int4 loses part of a fine-tune

The fp32 export is exact, yet int4 flips some answers. Look at the numbers on one real matrix: merging adds the LoRA update
$\\Delta = \\tfrac{\\alpha}{r}BA$ to the base weight $W$, and the merged weight minus the base weight *is* that update. Below we round the merged
weight the way a block-wise quantiser does (blocks of 32, a scale and a zero point each) and ask how big the rounding error is
compared with $\\Delta$, and how much of $\\Delta$ survives the rounding (the cosine between what changed after quantising and $\\Delta$).
"""),
("code", """
from safetensors.torch import load_file

base_weights = load_file(str(Path(base_dir) / "model.safetensors"))

def fake_quant(w, bits=4, block=32):
    \"\"\"Block-wise asymmetric round-to-nearest, as the builder's "rtn": a scale and an integer zero point per block.\"\"\"
    x = w.reshape(w.shape[0], -1, block)
    lo, hi = x.amin(-1, keepdim=True).clamp(max=0), x.amax(-1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / (2**bits - 1)).clamp(min=1e-12)
    zero = torch.round(-lo / scale)
    q = torch.clamp(torch.round(x / scale) + zero, 0, 2**bits - 1)
    return ((q - zero) * scale).reshape(w.shape)

rows = []
for name in ("model.layers.0.self_attn.v_proj.weight", "model.layers.15.mlp.down_proj.weight", "model.layers.29.mlp.up_proj.weight"):
    W = base_weights[name].float()
    W_merged = merged.get_parameter(name).detach().float()
    delta = W_merged - W                                           # the LoRA update, exactly
    for bits in (4, 8):
        kept = fake_quant(W_merged, bits) - fake_quant(W, bits)    # what the update changes in the quantised model
        rows.append({"matrix": name.replace("model.layers.", "L").replace(".weight", ""), "bits": bits,
                     "|Δ| / |W|": (delta.norm() / W.norm()).item(),
                     "|rounding error| / |Δ|": ((fake_quant(W_merged, bits) - W_merged).norm() / delta.norm()).item(),
                     "cos(update kept, Δ)": torch.nn.functional.cosine_similarity(kept.flatten(), delta.flatten(), dim=0).item()})
pd.DataFrame(rows).round(3)
"""),
("md", """
The LoRA update is about **1% of the weights**, while 4-bit rounding adds an error **several times larger than the update itself**: only
part of the update survives, as a statistical average over many weights. At 8 bits the rounding error is ~16x smaller and most of the
update survives. Hence labkit's int4 defaults (`labkit.export.DEFAULT_INT4_OPTIONS`): `k_quant` scales, the LM head **and** the most
sensitive layers (llama.cpp's "mixed" choice: `qkv_proj` and `down_proj` in the first and last eighth of the layers and every third layer)
in 8 bits, which costs ~10 MB. Measured on this lesson's adapter when it was written: PyTorch 80.4%, int4 with only the LM head in
8 bits 76.1%, with the mixed layers 82.6%. (The Olive course's default int4 build of this model drifted so far that the adapter's
effect was nearly gone.) The rule: **after quantising a fine-tuned model, measure the task again.**
"""),
("md", """
### 2.7 Speed and size

A small in-process benchmark with the same method as `bench/inference.py`: one prompt of 128 tokens of plain text, greedy decoding of
exactly `bench_new_tokens` tokens (EOS ignored), one warm-up, then the median of two runs.
- **time to first token (TTFT)**: processing the prompt and picking the first token; **prompt tokens/s** = prompt length / TTFT;
- **decode tokens/s**: the tokens after the first, one at a time, each reading the KV cache.

Decoding one token at a time reads every weight once per token, so it is limited by memory bandwidth: this is where 4-bit weights pay off.
"""),
("code", """
import statistics
import onnxruntime_genai as og

new_tokens = env.settings("export")["bench_new_tokens"]
filler = tokenizer("The quick brown fox jumps over the lazy dog while the farmer counts his sheep. ", add_special_tokens=False)["input_ids"]
bench_ids = (filler * 20)[:128]

def speed_torch(m, ids, n, runs=2):
    x = torch.tensor([ids])
    def gen(k):
        start = time.perf_counter()
        with torch.no_grad():
            m.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=k, min_new_tokens=k, do_sample=False,
                       pad_token_id=tokenizer.pad_token_id)
        return time.perf_counter() - start
    times = [(gen(1), gen(n)) for _ in range(runs + 1)][1:]           # (ttft, total); first run is a warm-up
    return statistics.median(t for t, _ in times), statistics.median(total - t for t, total in times)

def speed_onnx(onnx_model, ids, n, runs=2):
    times = []
    for _ in range(runs + 1):
        params = og.GeneratorParams(onnx_model.model)
        params.set_search_options(max_length=len(ids) + n, min_length=len(ids) + n, do_sample=False)
        gen = og.Generator(onnx_model.model, params)
        start = time.perf_counter()
        gen.append_tokens(ids)            # prompt processing
        gen.generate_next_token()         # the first new token
        first = time.perf_counter()
        while not gen.is_done():
            gen.generate_next_token()
        times.append((first - start, time.perf_counter() - first))
    times = times[1:]
    return statistics.median(t for t, _ in times), statistics.median(d for _, d in times)

timings = {"PyTorch fp32 (safetensors)": speed_torch(merged, bench_ids, new_tokens),
           "ONNX fp32": speed_onnx(onnx_models["fp32"], bench_ids, new_tokens),
           "ONNX int4": speed_onnx(onnx_models["int4"], bench_ids, new_tokens)}
speed = pd.DataFrame({name: {"size (MB)": sizes_mb[name], "TTFT (ms)": 1e3 * ttft, "prompt (tok/s)": len(bench_ids) / ttft,
                             "decode (tok/s)": (new_tokens - 1) / decode} for name, (ttft, decode) in timings.items()}).T
speed.round(1)
"""),
("code", """
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
short = lambda name: name.replace(" (safetensors)", "")
plots.bar_chart({short(k): v for k, v in speed["decode (tok/s)"].items()}, "tokens / s", "Decode speed (higher is better)", ax=axes[0], fmt="{:.0f}")
plots.bar_chart({short(k): v for k, v in speed["size (MB)"].items()}, "MB", "Size on disk (lower is better)", ax=axes[1], fmt="{:.0f}")
plt.tight_layout()
plt.show()
"""),
("md", """
### 2.8 Streaming chat with the int4 model

`GenAIModel.stream` yields the text piece by piece as each token is decoded, which is what a chat UI shows. First the format the
model was tuned on (no chat template: the raw `"{phrase} ->"` prompt), then an ordinary chat message through the chat template.
"""),
("code", """
int4 = onnx_models["int4"]

def stream_print(prompt, **kwargs):
    start, first, n = time.perf_counter(), None, 0
    for piece in int4.stream(prompt, **kwargs):
        first = first or time.perf_counter() - start
        print(piece, end="", flush=True)
        n += 1
    seconds = time.perf_counter() - start
    print(f"\\n   [{n} tokens, first after {1e3 * first:.0f} ms, {n / seconds:.0f} tokens/s]")

tone_prompt = "The airline lost my bag again and nobody at the desk will even look at me ->"
print(tone_prompt, end="")
stream_print(tone_prompt, chat=False, max_new_tokens=8)
print()
print("USER:", chat_message)
print("TUNED int4: ", end="")
stream_print(chat_message, max_new_tokens=48)
print("BASE (PyTorch, before fine-tuning):", base_reply)
"""),
("md", """
Look honestly at the second reply. The adapter was trained on one thing only: a phrase, `" ->"`, and a tone label. Merged into the
weights, it is *always* on, so the model's general chat behaviour may have shifted (a different reply than the base gave, or a
tone label where an answer should be). That is the price of merging a task adapter into the base: you deploy a **task model**,
not a general assistant. If you need both, keep the adapter separate and switch it per request (lesson 07), or train on chat-formatted
data that includes general conversations.
"""),
("md", """
## 3. Checks

The lesson's claims, on the numbers measured above:
1. the fp32 export computes the same function as PyTorch: logits equal to rounding error, identical greedy tokens;
2. int4 keeps the task: test accuracy within 3 points of PyTorch;
3. int4 decodes faster than PyTorch eager on this machine, and is smaller on disk than the fp32 safetensors.
"""),
("code", """
acc_torch, acc_fp32, acc_int4 = accuracy["PyTorch fp32"], accuracy["ONNX fp32"], accuracy["ONNX int4"]
decode = speed["decode (tok/s)"]

assert par["fp32"]["max_abs_diff"] < 1e-3, par["fp32"]["max_abs_diff"]
assert par["fp32"]["all_greedy_identical"], "fp32 ONNX and PyTorch decode different tokens"
assert agree["ONNX fp32"] >= 0.99, agree                       # same predictions as PyTorch (fp32 rounding can flip a near-tie)
assert acc_torch - acc_int4 <= 0.03, f"int4 lost {100 * (acc_torch - acc_int4):.1f} points of accuracy"
assert decode["ONNX int4"] > decode["PyTorch fp32 (safetensors)"], decode
assert sizes_mb["ONNX int4"] < sizes_mb["PyTorch fp32 (safetensors)"], sizes_mb

record(fp32_max_abs_diff=par["fp32"]["max_abs_diff"], int4_max_abs_diff=par["int4"]["max_abs_diff"],
       int4_greedy_match=par["int4"]["greedy_match"], acc_torch=acc_torch, acc_onnx_fp32=acc_fp32, acc_onnx_int4=acc_int4,
       decode_tok_s_torch=decode["PyTorch fp32 (safetensors)"], decode_tok_s_fp32=decode["ONNX fp32"],
       decode_tok_s_int4=decode["ONNX int4"], size_mb_torch=sizes_mb["PyTorch fp32 (safetensors)"],
       size_mb_int4=sizes_mb["ONNX int4"])
print(f"fp32 parity: max |Δlogit| {par['fp32']['max_abs_diff']:.1e}, greedy identical; "
      f"accuracy PyTorch {acc_torch:.1%} / ONNX fp32 {acc_fp32:.1%} / ONNX int4 {acc_int4:.1%}; "
      f"int4 decodes {decode['ONNX int4'] / decode['PyTorch fp32 (safetensors)']:.1f}x faster and is "
      f"{sizes_mb['PyTorch fp32 (safetensors)'] / sizes_mb['ONNX int4']:.1f}x smaller")
"""),
("md", """
## 4. Exercises

1. **Sampling vs greedy.** Generate the chat reply three times greedily and three times with sampling (`do_sample=True`,
   `temperature=0.8`, `top_p=0.9`). Which are identical? When would you want each in a deployed app?
2. **Speed-first int4.** The builder's CPU default for int4 is `accuracy_level=4`: the activations are quantised to int8 inside
   the `MatMulNBits` ops, which makes prompt processing faster. Export with `int4_options={"accuracy_level": 4}` and compare
   test accuracy, TTFT and decode speed with our default (`accuracy_level=1`, fp32 activations).

### Solutions
"""),
("code", """
# 1. Greedy is deterministic; sampling draws from the (temperature-sharpened, top-p truncated) distribution.
greedy = [int4.generate(chat_message, max_new_tokens=24) for _ in range(3)]
sampled = [int4.generate(chat_message, max_new_tokens=24, do_sample=True, temperature=0.8, top_p=0.9) for _ in range(3)]
for i, t in enumerate(greedy):
    print(f"greedy  {i}: {t!r}")
for i, t in enumerate(sampled):
    print(f"sampled {i}: {t!r}")
print("greedy replies identical:", len(set(greedy)) == 1, "| distinct sampled replies:", len(set(sampled)))
"""),
("code", """
# 2. accuracy_level=4: int8 activations in the int4 MatMuls.
start = time.perf_counter()
fast_dir = export.export_onnx(base_dir, adapter_dir=adapter_dir, precision="int4", int4_options={"accuracy_level": 4},
                              out=onnx_dirs["int4"].with_name(onnx_dirs["int4"].name + "-acc4"))
print(f"built in {time.perf_counter() - start:.0f} s: {fast_dir}")
fast = export.GenAIModel(fast_dir)
acc4 = evaluate.classification_report(y_true, onnx_classify(fast, test_prompts), labels)["accuracy"]
ttft4, decode4 = speed_onnx(fast, bench_ids, new_tokens)
pd.DataFrame({"accuracy_level=1 (ours)": {"accuracy": acc_int4, "TTFT (ms)": speed.loc["ONNX int4", "TTFT (ms)"],
                                          "decode (tok/s)": decode["ONNX int4"]},
              "accuracy_level=4": {"accuracy": acc4, "TTFT (ms)": 1e3 * ttft4, "decode (tok/s)": (new_tokens - 1) / decode4}}).round(3)
"""),
("code", """
print(f"lesson ran in {(time.perf_counter() - lesson_start) / 60:.1f} min")
"""),
("md", """
## Recap

- The onnxruntime-genai builder turns a Hugging Face checkpoint into a self-contained folder: an ONNX graph with fused attention and an
  explicit KV cache, `genai_config.json`, and the tokenizer. Merge a LoRA adapter first and the graph needs no PEFT.
- **fp32 export = PyTorch**, to rounding error: check it with logits and greedy tokens on the same token ids.
- **int4** (`MatMulNBits`, blocks of 32, LM head in int8) is several times smaller and decodes faster on a CPU; it changes the logits,
  so judge it on the **task metric**, not by assumption.
- A merged task adapter turns the model into a task model: check the behaviour you still need (here, chat) before shipping.

**Next:** lesson 07 keeps *one* ONNX base and switches small `.onnx_adapter` files per task at run time, instead of one merged model per task.
"""),
]
build(cells, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "notebooks" / "06_onnx_deployment.ipynb"))
