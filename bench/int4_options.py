"""Which int4 settings keep the fine-tune's gain? Lesson 07's multi-adapter base, one build per setting.

    python bench/int4_options.py [--recipes 150] [--settings default,accuracy_level_1,...]

Builds lesson 07's int4 multi-adapter base (the tone and recipes LoRA adapters of lessons 01
and 02, served at runtime on one base) once per int4 setting below, then measures each:
size on disk, decode tokens/s and time to first token (128-token prompt, 64 new tokens,
``labkit.course.timing.genai_speed``), tone accuracy on the 138 test messages and recipes item F1 on
``--recipes`` test recipes, both with the adapter of that task active. The PyTorch scores
with and without each adapter give the gain; "share kept" = (int4 - base) / (PyTorch - base),
with a 95% paired bootstrap interval over the test examples (lesson 04).
The adapters themselves stay float32 in every setting (only the base is quantised).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from labkit import data, env, evaluate, models
from labkit.course import lessons, timing
from labkit.onnx import adapter_files, build, serve
from tone_test import correct, tone_test

# each setting: int4_options passed over labkit's defaults (build.DEFAULT_INT4_OPTIONS); None removes one
SETTINGS = {
    "default": {},
    "accuracy_level_1": {"accuracy_level": 1},                   # fp32 activations in the 4/8-bit MatMuls
    "k_quant": {"algo_config": "k_quant"},
    "block_16": {"block_size": 16},
    "lm_head_fp32": {"nodes_to_exclude": "/lm_head/MatMul"},      # output layer (and the tied embeddings) unquantised
    "all_4bit": {"matmul_mixed_precision": None, "int8_nodes": None},  # no 8-bit layers at all
    "k_quant_acc1": {"algo_config": "k_quant", "accuracy_level": 1},
    "accuracy_level_2": {"accuracy_level": 2},                   # fp16 activations
    "accuracy_level_3": {"accuracy_level": 3},                   # bf16 activations (AMX, AVX512-BF16)
    "block_16_k_quant": {"block_size": 16, "algo_config": "k_quant"},
    "fp32": None,                                                 # the unquantised export: the reference
    # 8 bits by node name (labkit's int8_nodes; layers.* = every layer; qkv_proj = q, k and v apart here)
    "presets_only": {"int8_nodes": None},                         # labkit's default before: LM head + "mixed" layers
    "presets_only_qk_float": {"int8_nodes": None,                 # and before that: q/k of the 8-bit layers in float
                              "nodes_to_exclude": ",".join(f"/model/layers.{i}/attn/{p}/MatMul"
                                                           for i in build.mixed_layers(30) for p in ("q_proj", "k_proj"))},
    "down_int8": {"int8_nodes": "/model/layers.*/mlp/down_proj/MatMul"},
    "qkv_int8": {"int8_nodes": "/model/layers.*/attn/qkv_proj/MatMul"},
    "all_int8_but_o": {"int8_nodes": ",".join(f"/model/layers.*/{m}/MatMul" for m in
                                              ("attn/qkv_proj", "mlp/gate_proj", "mlp/up_proj", "mlp/down_proj"))},
    "all_int8": {"int8_nodes": ",".join(f"/model/layers.*/{m}/MatMul" for m in
                                        ("attn/qkv_proj", "attn/o_proj", "mlp/gate_proj", "mlp/up_proj", "mlp/down_proj"))},
}


def recipe_f1s(outputs, recipes) -> np.ndarray:
    """Item F1 per generated recipe."""
    return np.array(evaluate.extraction_scores(outputs, recipes["gold"])["f1s"])


def pytorch_recipes(model, tok, recipes) -> np.ndarray:
    """Item F1 per recipe of a PyTorch model (PEFT adapter active, or the base), greedy."""
    outputs = evaluate.generate(model, tok, recipes["prompts"], max_new_tokens=recipes["max_new"], batch_size=16)
    return recipe_f1s(outputs, recipes)


def share_kept(scores, floor, top) -> tuple[float, float, float]:
    """The share of the fine-tune's gain (``top`` - ``floor``, PyTorch) that ``scores`` keep,
    with a 95% paired bootstrap interval (resampling the test examples)."""
    gain = top.mean() - floor.mean()
    d = evaluate.paired_bootstrap(top, scores, seed=0)
    return 1 + d["difference"] / gain, 1 + d["ci_low"] / gain, 1 + d["ci_high"] / gain


def onnx_scores(m, tok, tone, recipes):
    """The same per-example scores from an onnxruntime-genai multi-adapter model, each task's adapter active."""
    label_ids = evaluate.label_token_ids(tok, tone["labels"])
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in tone["prompts"]]
    predicted = m.classify(ids, tone["labels"], label_ids, adapter="tone")
    outputs = [m.generate(p, max_new_tokens=recipes["max_new"], chat=False, adapter="recipes")
               for p in recipes["prompts"]]
    return {"tone": np.array([p == g for p, g in zip(predicted, tone["gold"])], dtype=float),
            "recipes": recipe_f1s(outputs, recipes)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", type=int, default=150, help="test recipes to generate (default: all 150)")
    p.add_argument("--settings", default="fp32," + ",".join(k for k in SETTINGS if k != "fp32"), help=f"comma-separated, from {list(SETTINGS)}")
    p.add_argument("--out", default=None, help="where the builds go (default: a temporary folder)")
    a = p.parse_args()

    base, tok = models.load_base()
    base_dir = models.base_model_path()
    runs = {task: lessons.lesson_adapter(task, base, tok) for task in ("tone", "recipes")}
    adapter_dirs = {task: Path(r.adapter_dir) for task, r in runs.items()}
    recipe_test = list(data.load_dataset("recipes")["test"])[: a.recipes]
    tone = tone_test()
    recipes = {"prompts": [x["prompt"] for x in data.task_pairs("recipes", recipe_test)],
               "gold": [r["ingredients"] for r in recipe_test], "max_new": env.settings("recipes")["max_new_tokens"]}

    floor = {"tone": correct(base, tok, tone), "recipes": pytorch_recipes(base, tok, recipes)}
    top = {"tone": correct(runs["tone"].model, tok, tone), "recipes": pytorch_recipes(runs["recipes"].model, tok, recipes)}
    print(f"PyTorch: base tone {floor['tone'].mean():.3f}, recipes {floor['recipes'].mean():.3f}; "
          f"with the adapter tone {top['tone'].mean():.3f}, recipes {top['recipes'].mean():.3f}", flush=True)
    prompt_ids = timing.filler_ids(tok, 128)
    root = Path(a.out or tempfile.mkdtemp(prefix="labkit-int4-"))
    rows = []
    for name in a.settings.split(","):
        start = time.perf_counter()
        precision = "fp32" if SETTINGS[name] is None else "int4"
        folder = build.build_base(base_dir, "all-linear", precision=precision, out=root / name,
                                     int4_options=SETTINGS[name])
        for task, d in adapter_dirs.items():
            build.convert_adapter(d, folder, folder / f"{task}{adapter_files.SUFFIX}")
        build_s = time.perf_counter() - start
        m = serve.MultiAdapterModel(folder)
        scores = onnx_scores(m, tok, tone, recipes)
        speed = timing.genai_speed(m, prompt_ids, 64, adapter="tone")
        size = sum(build.folder_size_mb(f) for f in folder.iterdir() if not f.name.endswith(adapter_files.SUFFIX))
        kept = {t: share_kept(scores[t], floor[t], top[t]) for t in scores}
        rows.append({"setting": name, "options": SETTINGS[name], "MB": size, "build s": build_s, **speed,
                     "tone": scores["tone"].mean(), "tone kept": kept["tone"],
                     "recipes": scores["recipes"].mean(), "recipes kept": kept["recipes"]})
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
        del m

    print(f"\nLesson 07's int4 multi-adapter base, {len(tone['prompts'])} tone messages, {len(recipes['prompts'])} "
          f"recipes; CPU: {env.cpu_capability()}")
    print(f"PyTorch fp32: tone {floor['tone'].mean():.3f} -> {top['tone'].mean():.3f} with its adapter; "
          f"recipes item F1 {floor['recipes'].mean():.3f} -> {top['recipes'].mean():.3f}\n")
    print("| setting | int4_options over labkit's | base MB | build s | TTFT ms | decode tok/s | tone acc | tone gain kept "
          "| recipes F1 | recipes gain kept |")
    kept = lambda k: f"{k[0]:.2f} [{k[1]:.2f}, {k[2]:.2f}]"
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | `{r['options'] or '-'}` | {r['MB']:.0f} | {r['build s']:.0f} | {r['TTFT (ms)']:.0f} "
              f"| {r['decode (tok/s)']:.1f} | {r['tone']:.3f} | {kept(r['tone kept'])} | {r['recipes']:.3f} "
              f"| {kept(r['recipes kept'])} |")


if __name__ == "__main__":
    main()
