"""How fast does a served LoRA adapter decode, against the same model merged? By target modules.

    python bench/adapter_decode.py [--targets all-linear q_proj,v_proj q_proj,k_proj,v_proj,o_proj]

For each set of target modules: trains lesson 01's tone LoRA on those modules only (the recipe
otherwise unchanged; all-linear is the lesson's own run), builds an int4 multi-adapter base
with LoRA inputs on those modules (lesson 07's serving) and an int4 export with the adapter
merged (lesson 06's), and measures decode tokens/s and time to first token of each
(``labkit.course.timing.genai_speed``: 128-token prompt, 64 new tokens) with the adapter active and
with none, plus the tone accuracy of the served adapter on the 138 test messages, and what a
switch costs when serving merges on switch (loading the merged export and its first request). Fewer
adapted modules mean fewer LoRA MatMuls per token: this measures what that buys and costs.
"""

import argparse
import dataclasses
import time
from pathlib import Path

from labkit import env, evaluate, models, train
from labkit.course import lessons, timing
from labkit.onnx import adapter_files, build, serve
from tone_test import tone_test


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", nargs="+", default=["all-linear", "q_proj,v_proj", "q_proj,k_proj,v_proj,o_proj"])
    p.add_argument("--out", default="/tmp/labkit-adapter-decode")
    a = p.parse_args()

    base, tok = models.load_base()
    base_dir = models.base_model_path()
    config, pairs = lessons.tone_recipe()
    tone = tone_test()
    labels = tone["labels"]
    label_ids = evaluate.label_token_ids(tok, labels)
    ids = [tok(x, add_special_tokens=False)["input_ids"] for x in tone["prompts"]]
    prompt_ids = timing.filler_ids(tok, 128)
    rows = []
    for targets in a.targets:
        name = targets.replace(",", "+")
        modules = targets if targets == "all-linear" else targets.split(",")
        if targets == "all-linear":
            run = lessons.lesson_adapter("tone", base, tok)
        else:
            cfg = dataclasses.replace(config, target_modules=modules)
            run = train.finetune(base, tok, pairs, None, cfg, output_dir=Path(a.out) / f"run-{name}",
                                 reuse=True, live_plot=False, verbose=False)
        served_dir = build.generate_adapter(base_dir, {"tone": run.adapter_dir}, Path(a.out) / f"served-{name}",
                                               precision="int4")
        merged_dir = build.export_onnx(base_dir, adapter_dir=run.adapter_dir, precision="int4",
                                        out=Path(a.out) / f"merged-{name}", verbose=False)
        served = serve.MultiAdapterModel(served_dir)
        start = time.perf_counter()           # merge on switch: a switch loads the task's merged export
        merged = serve.GenAIModel(merged_dir)
        merged.logits(prompt_ids)
        load_ms = 1e3 * (time.perf_counter() - start)
        with_adapter = timing.genai_speed(served, prompt_ids, 64, adapter="tone")
        no_adapter = timing.genai_speed(served, prompt_ids, 64, adapter=None)
        merged_speed = timing.genai_speed(merged, prompt_ids, 64)
        predicted = served.classify(ids, labels, label_ids, adapter="tone")
        rows.append({"targets": targets, "adapter MB": build.folder_size_mb(served_dir / f"tone{adapter_files.SUFFIX}"),
                     "accuracy": evaluate.classification_report(tone["gold"], predicted, labels)["accuracy"],
                     "adapter": with_adapter, "none": no_adapter, "merged": merged_speed, "load ms": load_ms})
        r = rows[-1]
        print(f"{targets}: adapter {r['adapter']['decode (tok/s)']:.1f} tok/s, no adapter {r['none']['decode (tok/s)']:.1f}, "
              f"merged {r['merged']['decode (tok/s)']:.1f}; accuracy {r['accuracy']:.3f}", flush=True)
        del served, merged

    print(f"\nLesson 01's tone LoRA (r={config.r}) served on lesson 07's int4 base, by target modules; CPU: "
          f"{env.cpu_capability()}\n")
    print("| target modules | adapter file MB | tone acc (served, int4) | decode tok/s: adapter active | no adapter "
          "| merged | adapter / merged | TTFT ms: adapter | merged | merged export load + first request ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        d = {k: r[k]["decode (tok/s)"] for k in ("adapter", "none", "merged")}
        print(f"| {r['targets']} | {r['adapter MB']:.1f} | {r['accuracy']:.3f} | {d['adapter']:.1f} | {d['none']:.1f} "
              f"| {d['merged']:.1f} | {d['adapter'] / d['merged']:.2f}x | {r['adapter']['TTFT (ms)']:.0f} "
              f"| {r['merged']['TTFT (ms)']:.0f} | {r['load ms']:.0f} |")


if __name__ == "__main__":
    main()
