from nbtools import build, COLAB
cells = [
("md", """
# Lesson 03 — QLoRA: LoRA on a 4-bit base model

**Learning objectives**
- Understand **NF4** (4-bit NormalFloat) and **double quantisation**, the two storage tricks of QLoRA (Dettmers et al. 2023).
- Measure the weight memory of the same model in fp32, bf16, int8 and NF4, and see which parts stay in higher precision.
- Measure the quantisation error of a real weight matrix, and reproduce NF4 in a few lines of PyTorch.
- Train LoRA adapters on the 4-bit model (QLoRA) and compare it with plain LoRA: speed, memory, validation loss.
- Decide when QLoRA is the right tool, and know the two settings that matter on a GPU: the compute dtype and paged optimizers.
"""),
COLAB,
("md", """
## 1. The idea

LoRA (lesson 02) shrinks what you *train*; the frozen base still sits in memory at full precision. For a 7-billion-parameter model that is
28 GB in fp32 or 14 GB in bf16 — more than a Colab T4 has. **QLoRA** stores the frozen base in 4 bits and trains ordinary LoRA adapters on top:
each forward pass de-quantises a layer's weights on the fly to the *compute dtype*, multiplies, and throws the de-quantised copy away.
The gradients flow through the frozen 4-bit weights into the adapters only.

**NF4, blockwise.** Split the weights into blocks of 64. For each block store one scale, its absolute maximum $c = \\max_i |w_i|$, and for each
weight the index (4 bits: 16 choices) of the level $q_j$ closest to $w_i / c$:

$$ \\hat w_i = c \\cdot q_{j(i)}, \\qquad j(i) = \\arg\\min_j \\left| \\tfrac{w_i}{c} - q_j \\right| $$

The 16 levels $q_j$ are not evenly spaced: they are **quantiles of a normal distribution** (rescaled to $[-1, 1]$, with an exact 0), because
trained weights are roughly normally distributed. Each level then covers about the same number of weights, so no code is wasted on the tails.

**Double quantisation.** One fp32 scale per 64 weights costs $32/64 = 0.5$ bit per weight. QLoRA quantises those scales too, to 8 bits in blocks of
256 (with one fp32 scale per block of scales): $8/64 + 32/(64 \\cdot 256) \\approx 0.127$ bit per weight. Total: about **4.13 bits per weight** instead of 32.

`labkit.models.load_base(quantization="nf4")` asks bitsandbytes for exactly this recipe (`bnb_4bit_quant_type="nf4"`, `bnb_4bit_use_double_quant=True`).
Recent bitsandbytes releases run it on CPUs too, which lets us *show* QLoRA here; it is a GPU technique (section 5 says why).
"""),
("code", """
import time
import numpy as np
import pandas as pd
import torch
import matplotlib.pyplot as plt
import bitsandbytes.functional as bnbF
from labkit import env, models, data, train, evaluate, plots
from labkit.course import record

NF4_LEVELS = bnbF.get_4bit_type("nf4", device="cpu")       # the 16 NF4 levels bitsandbytes uses
print("NF4 levels:", np.round(NF4_LEVELS.numpy(), 4))

fig, ax = plt.subplots(figsize=(7, 2.6))
xs = np.linspace(-3, 3, 400)
ax.plot(xs / 3, np.exp(-xs ** 2 / 2) / np.sqrt(2 * np.pi), color="gray", label="normal density (x rescaled to [-1, 1])")
ax.vlines(NF4_LEVELS.numpy(), 0, 0.45, color="tab:orange", label="NF4 levels")
ax.vlines(np.linspace(-1, 1, 16), -0.12, -0.02, color="tab:blue", label="16 evenly spaced levels")
ax.set_yticks([]); ax.set_xlabel("w / absmax of its block"); ax.legend(fontsize=8, loc="upper left"); ax.set_title("NF4: levels dense where weights are dense")
plt.show()
"""),
("md", """
## 2. Weight memory: fp32, bf16, int8, NF4

We load the same model four ways and ask transformers for each one's `get_memory_footprint()` (parameters and buffers, in bytes).
`int8` is bitsandbytes' LLM.int8(): 8-bit weights with one scale per row.
"""),
("code", """
footprint, loaded = {}, {}
for name, kwargs in [("fp32", {"dtype": torch.float32}), ("bf16", {"dtype": torch.bfloat16}), ("int8", {"quantization": "int8"}), ("NF4", {"quantization": "nf4"})]:
    m, tokenizer = models.load_base(**kwargs)
    footprint[name] = m.get_memory_footprint() / 1e6
    loaded[name] = m
fp32_model, nf4_model = loaded["fp32"], loaded["NF4"]
plots.bar_chart(footprint, ylabel="weight memory (MB)", title="SmolLM2-135M weights", fmt="{:.0f} MB")
plt.show()
pd.Series({k: f"{v:.0f} MB ({v / footprint['fp32']:.2f} x fp32)" for k, v in footprint.items()}, name="weights").to_frame()
"""),
("md", """
NF4 is about 4.13 bits per weight, so why is the 4-bit model not 1/8 of fp32? Because **not everything is quantised**. bitsandbytes replaces
the `nn.Linear` layers of the decoder; the token embedding (49,152 × 576, tied to the output layer `lm_head`, so the two share one matrix) and the
RMSNorm weights stay in the model's dtype (fp32 here). Where the bytes go:
"""),
("code", """
def bytes_by_kind(model):
    out = {}
    for name, p in model.named_parameters():
        kind = ("4-bit Linear weights (packed, 2 per byte)" if p.dtype == torch.uint8 else
                "embedding (= lm_head, tied)" if "embed_tokens" in name else "norms")
        out[kind] = out.get(kind, 0) + p.numel() * p.element_size()
    return out

where = pd.Series(bytes_by_kind(nf4_model), name="MB") / 1e6
packed_bytes = where["4-bit Linear weights (packed, 2 per byte)"] * 1e6
# the blockwise constants (absmax scales, double-quantised) are kept outside the parameters: count them too
consts = 0
for mod in nf4_model.modules():
    qs = getattr(getattr(mod, "weight", None), "quant_state", None)
    if qs is not None:
        consts += qs.absmax.numel() * qs.absmax.element_size() + qs.state2.absmax.numel() * qs.state2.absmax.element_size()
where["quantisation constants (absmax, 8-bit + fp32)"] = consts / 1e6
n_linear = sum(p.numel() for n, p in fp32_model.named_parameters() if n.endswith("proj.weight"))
print(f"quantised Linear weights: {n_linear / 1e6:.1f} M params -> "
      f"{(packed_bytes + consts) * 8 / n_linear:.3f} bits per weight (4 + double-quantised constants)")
where.round(2).to_frame()
"""),
("md", """
So in this small model the fp32 embedding is most of the NF4 footprint; in a 7B model the embedding is a few percent of the weights and NF4
gets close to its 4.13/32 ≈ 1/8 of fp32. Also kept in higher precision: the **LoRA adapters** (trained in the compute dtype) and all
**activations** — the 4-bit weights are de-quantised to the compute dtype for every matrix product.

## 3. What does 4-bit cost in accuracy? The quantisation error of one matrix

Take the first layer's MLP `up_proj` (1536 × 576). We de-quantise bitsandbytes' NF4 copy with `dequantize_4bit` (weights + their
`quant_state`) and compare with the fp32 original; the int8 copy is de-quantised by its per-row scales. Then we reproduce NF4 ourselves,
following the formula in section 1. (Our fp32 base was itself de-quantised from a 4-bit GGUF in lesson 00; the errors below are relative to it.)
"""),
("code", """
W = fp32_model.model.layers[0].mlp.up_proj.weight.detach().float().cpu()
q4 = nf4_model.model.layers[0].mlp.up_proj.weight                      # a bitsandbytes Params4bit
W_nf4 = bnbF.dequantize_4bit(q4.data, q4.quant_state).float().cpu()
q8 = loaded["int8"].model.layers[0].mlp.up_proj.weight                 # an Int8Params, with per-row scales SCB
W_int8 = (q8.float() * q8.SCB.float()[:, None] / 127).cpu()

def nf4_codes(w, blocksize=64):
    \"\"\"Blockwise absmax, then the index of the nearest NF4 level: the 4-bit codes and the scales.\"\"\"
    blocks = w.reshape(-1, blocksize)
    absmax = blocks.abs().max(dim=1, keepdim=True).values
    return (blocks / absmax).unsqueeze(-1).sub(NF4_LEVELS).abs().argmin(dim=-1), absmax

def nf4_by_hand(w, blocksize=64):
    \"\"\"De-quantised NF4 (scales kept in fp32, no double quantisation).\"\"\"
    codes, absmax = nf4_codes(w, blocksize)
    return (NF4_LEVELS[codes] * absmax).reshape(w.shape)

def uniform4_by_hand(w, blocksize=64):
    \"\"\"The same, with 16 evenly spaced levels instead of the normal quantiles.\"\"\"
    levels = torch.linspace(-1, 1, 16)
    blocks = w.reshape(-1, blocksize)
    absmax = blocks.abs().max(dim=1, keepdim=True).values
    idx = (blocks / absmax).unsqueeze(-1).sub(levels).abs().argmin(dim=-1)
    return (levels[idx] * absmax).reshape(w.shape)

def errors(w_hat):
    return {"mean |error|": (w_hat - W).abs().mean().item(), "relative error ‖Ŵ−W‖/‖W‖": ((w_hat - W).norm() / W.norm()).item()}

W_mine = nf4_by_hand(W)
packed = q4.data.flatten().cpu()                                          # two 4-bit codes per byte
bnb_codes = torch.stack([packed >> 4, packed & 0xF], dim=-1).flatten().long()
same_codes = (nf4_codes(W)[0].flatten() == bnb_codes).float().mean().item()
err = pd.DataFrame({"int8 (LLM.int8, per-row scale)": errors(W_int8), "NF4 (bitsandbytes)": errors(W_nf4),
                    "NF4 by hand (section 1 formula)": errors(W_mine), "uniform 4-bit by hand": errors(uniform4_by_hand(W))}).T
print(f"mean |w| = {W.abs().mean():.4f}; our 4-bit codes equal bitsandbytes' for {same_codes:.2%} of the weights; "
      f"de-quantised values differ by {(W_mine - W_nf4).abs().mean():.1e} on average (bitsandbytes stores the scales in 8 bits)")
err.style.format("{:.4f}")
"""),
("code", """
blocks = W.reshape(-1, 64)
normalised = (blocks / blocks.abs().max(dim=1, keepdim=True).values).flatten().numpy()
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.4))
ax1.hist(normalised, bins=200, color="gray")
for level in NF4_LEVELS.numpy():
    ax1.axvline(level, color="tab:orange", lw=1)
ax1.set_xlabel("w / absmax of its block of 64"); ax1.set_ylabel("weights")
ax1.set_title("up_proj weights (scaled per block) and the 16 NF4 levels")
ax2.hist((W_nf4 - W).flatten().numpy(), bins=200, color="tab:orange", alpha=0.7, label="NF4")
ax2.hist((W_int8 - W).flatten().numpy(), bins=200, color="tab:blue", alpha=0.7, label="int8")
ax2.set_xlabel("Ŵ − W"); ax2.set_title("quantisation error"); ax2.legend(); ax2.set_yscale("log")
plt.tight_layout(); plt.show()
"""),
("md", """
NF4's error is several times int8's (16 levels instead of 255), yet it is small next to the weights themselves; the normal-quantile levels
beat 16 evenly spaced ones at the same block size. Our few lines of `nf4_codes` pick the same 4-bit codes as bitsandbytes (the small
differences in the de-quantised values come from the 8-bit double-quantised scales).
How much does it cost the *model*? The validation loss of the base before any training, in fp32 and in NF4, is measured in the next section:
QLoRA training then also has to make up for the quantisation.

## 4. Run it: QLoRA vs LoRA, same data, same steps

Both runs: rank 16, α 32, all linear layers, the same examples from the `recipes` task and the same number of steps; the only difference is
the base (NF4 vs fp32). We measure the validation loss before and after, the seconds per step, and how much the process's memory (RSS)
grows during training. On a CPU the quick profile runs only a few steps: the point is to see QLoRA work and to measure its cost, not to train a good model.
"""),
("code", """
import threading
import psutil

s = env.settings("qlora")
print("profile:", env.profile(), s)
ds = data.load_dataset("recipes")
def subset(split, n):
    return ds[split] if n is None else ds[split].select(range(min(n, len(ds[split]))))
train_pairs = data.task_pairs("recipes", subset("train", s["train_examples"]))
val_pairs = data.task_pairs("recipes", subset("validation", s["eval_examples"]))

import gc, ctypes, trl   # import TRL now, so its import does not count as training memory

class PeakRSS:
    \"\"\"Samples the process's resident memory every 0.1 s in a thread; .peak - .start is the growth.
    On entry, freed memory is handed back to the OS (glibc's malloc_trim), so that memory freed by an earlier
    run does not hide this run's growth.\"\"\"
    def __enter__(self):
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:   # not glibc (macOS, Windows): the growth is then a lower bound
            pass
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self._running = True
        def sample():
            while self._running:
                self.peak = max(self.peak, self.proc.memory_info().rss)
                time.sleep(0.1)
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self
    def __exit__(self, *exc):
        self._running = False
        self._thread.join()

def run(method, model):
    cfg = train.TrainConfig(method=method, r=16, lora_alpha=32, target_modules="all-linear", learning_rate=s["learning_rate"],
                            max_steps=s["max_steps"], batch_size=s["batch_size"], warmup_steps=1, logging_steps=1,
                            eval_steps=None, save_steps=s["max_steps"])
    before = evaluate.completion_loss(model, tokenizer, val_pairs)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as mem:
        res = train.finetune(model, tokenizer, train_pairs, config=cfg, resume=False,
                             output_dir=models.labkit_home() / "runs" / f"lesson03-{method}")
    after = evaluate.completion_loss(res.model, tokenizer, val_pairs)
    row = {"s / step": res.train_seconds / cfg.max_steps, "val loss before": before, "val loss after": after,
           "RSS growth in training (MB)": (mem.peak - mem.start) / 1e6}
    if torch.cuda.is_available():   # on a GPU, what matters is GPU memory
        row["peak GPU memory (MB)"] = torch.cuda.max_memory_allocated() / 1e6
    return res, row
"""),
("code", """
qlora_result, qlora_row = run("qlora", nf4_model)
print({k: round(v, 3) for k, v in qlora_row.items()})
"""),
("code", """
lora_result, lora_row = run("lora", fp32_model)
print({k: round(v, 3) for k, v in lora_row.items()})
"""),
("md", """
## 5. Look at the result
"""),
("code", """
table = pd.DataFrame({"QLoRA (NF4 base)": qlora_row, "LoRA (fp32 base)": lora_row}).T
table.insert(0, "base weights (MB)", [footprint["NF4"], footprint["fp32"]])
print(f"QLoRA vs LoRA on this machine: weights x{footprint['NF4'] / footprint['fp32']:.2f}, "
      f"time per step x{qlora_row['s / step'] / lora_row['s / step']:.2f}, "
      f"validation loss after {s['max_steps']} steps {qlora_row['val loss after']:.3f} vs {lora_row['val loss after']:.3f}")
table.round(3)
"""),
("md", """
What the numbers say (on this CPU):

- **Memory:** the frozen base takes about a third of the fp32 bytes (and would take ~1/8 in a large model). The adapters, their gradients
  and the optimizer state are the same size in both runs (4.9 M trainable parameters). The RSS growth is a rough measure of the rest (activations,
  temporary de-quantised weights, allocator caching): it is not where QLoRA saves.
- **Speed:** every QLoRA matrix product first de-quantises the 4-bit weights, so a step is slower than with fp32 weights; on a CPU that
  is pure cost, since memory was never the problem. (How much slower depends on the hardware and the kernels: compare the two rows.)
- **Quality:** the NF4 model starts from a worse validation loss (the quantisation error of section 3); both runs lower it, and with the
  same steps QLoRA may end a little behind LoRA, because it also has to make up for the quantisation.

**When to choose which**

| choose **QLoRA** when | choose **LoRA** when |
|---|---|
| you are *memory-bound*: the model you want does not fit in GPU memory at 16 bits (a 7B model in bf16 needs 14 GB for the weights alone; in NF4 about 4 GB, so it trains on a 16 GB T4) | you are *compute-bound*: the model fits, and every step counts (a CPU, or a GPU with room to spare) |
| a bigger base in 4 bits beats a smaller base in 16 bits for your task | you want the exact base model's outputs, merged weights without de-quantisation error |

On this course's CPU the 135M model fits easily at fp32, so LoRA is the right choice; QLoRA is shown here so you can use it on a GPU.

**Two settings that matter on a GPU**
- **Compute dtype** (`bnb_4bit_compute_dtype`): the dtype the 4-bit weights are de-quantised to for each matrix product. labkit sets it from
  `labkit.env.train_dtype()` in `labkit.models.quantization_config`: fp32 on a CPU, bf16 on Ampere and newer, fp16 on a T4. TRL would cast the
  adapters to bf16 whatever the hardware; labkit keeps them in fp32 where bf16 is not the training dtype (on this CPU, bf16 adapters made a
  QLoRA step about 1.7x slower).
- **Paged optimizers** (`TrainConfig(optim="paged_adamw_8bit")`): the AdamW state in 8 bits, in *paged* memory that spills to CPU RAM when the GPU runs
  out for a moment (a long batch) instead of crashing. It needs CUDA; on a CPU keep the default `adamw_torch`.
"""),
("code", """
print(models.quantization_config("nf4"))
"""),
("md", """
## 6. Checks
"""),
("code", """
nf4_ratio = footprint["NF4"] / footprint["fp32"]
assert nf4_ratio <= 1 / 3, f"NF4 weights should take at most a third of fp32: {nf4_ratio:.2f}"
assert footprint["NF4"] < footprint["int8"] < footprint["bf16"] < footprint["fp32"], footprint
assert qlora_row["val loss after"] < qlora_row["val loss before"], qlora_row
assert lora_row["val loss after"] < lora_row["val loss before"], lora_row
assert same_codes > 0.99, f"our NF4 codes should be bitsandbytes' codes: {same_codes:.2%} equal"
assert err.loc["int8 (LLM.int8, per-row scale)", "mean |error|"] < err.loc["NF4 (bitsandbytes)", "mean |error|"]
assert err.loc["NF4 by hand (section 1 formula)", "mean |error|"] < err.loc["uniform 4-bit by hand", "mean |error|"], err
record(fp32_mb=footprint["fp32"], bf16_mb=footprint["bf16"], int8_mb=footprint["int8"], nf4_mb=footprint["NF4"], nf4_over_fp32=nf4_ratio,
       nf4_rel_error=err.loc["NF4 (bitsandbytes)", "relative error ‖Ŵ−W‖/‖W‖"],
       qlora_s_per_step=qlora_row["s / step"], lora_s_per_step=lora_row["s / step"],
       qlora_val_before=qlora_row["val loss before"], qlora_val_after=qlora_row["val loss after"],
       lora_val_before=lora_row["val loss before"], lora_val_after=lora_row["val loss after"])
print(f"NF4 weights are {nf4_ratio:.2f} x fp32; QLoRA lowered the validation loss "
      f"{qlora_row['val loss before']:.3f} -> {qlora_row['val loss after']:.3f} at {qlora_row['s / step']:.1f} s/step "
      f"(LoRA: {lora_row['s / step']:.1f} s/step).")
"""),
("md", """
## Exercises

1. **Bits per weight.** Work out the bits per weight of NF4 with and without double quantisation (blocks of 64, scales in fp32 vs 8-bit in blocks of 256),
   and the weight memory of a 7-billion-parameter model in bf16, in NF4 without double quantisation, and in NF4 with it.
2. **Block size.** Quantise `up_proj` with `nf4_by_hand` at block sizes 32, 64, 128 and 256. How do the error and the cost of the scales change?

### Solutions
"""),
("code", """
# 1. Bits per weight and a 7B model.
single = 4 + 32 / 64                      # one fp32 absmax per 64 weights
double = 4 + 8 / 64 + 32 / (64 * 256)     # 8-bit absmax per 64 weights, one fp32 scale per 256 absmax values
params = 7e9
pd.DataFrame({"bits per weight": [16, single, double],
              "7B weights (GB)": [params * 16 / 8e9, params * single / 8e9, params * double / 8e9]},
             index=["bf16", "NF4, fp32 scales", "NF4 + double quantisation"]).round(3)
"""),
("code", """
# 2. Block size: smaller blocks follow the weights more closely but need more scales.
rows = []
for bs in (32, 64, 128, 256):
    rows.append({"block size": bs, **errors(nf4_by_hand(W, bs)), "scale bits per weight (fp32 scales)": 32 / bs})
pd.DataFrame(rows).set_index("block size").round(4)
"""),
("md", """
## Recap

- NF4 stores each weight as one of 16 normal-quantile levels times its block's absmax (blocks of 64); double quantisation shrinks the scales to 8 bits.
  About 4.13 bits per weight.
- Only the Linear layers are quantised: embeddings, norms, adapters and activations stay in higher precision, which is why this small model's
  NF4 footprint is about a third of fp32, not an eighth.
- QLoRA trains ordinary LoRA adapters through the frozen 4-bit weights; it lowers the validation loss like LoRA does, at a higher cost per step.
- Choose QLoRA when memory is the limit (a bigger model on the same GPU), LoRA when compute is.

**Next:** lesson 04 measures fine-tuned models properly: held-out metrics, confidence intervals, confusion matrices and the leakage pitfalls.
"""),
]
build(cells, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "notebooks" / "03_qlora.ipynb"))
