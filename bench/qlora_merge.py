"""Which base should a QLoRA adapter be merged into? Prints a table.

A QLoRA adapter learned its update against the NF4-rounded base weights. Exporting it means merging
it into full-precision weights: either the original (unrounded) fp32 weights, or the NF4 weights
dequantised to fp32 (what labkit.onnx.build.merge_base does since issue 31). This compares both
merges with the model that was trained (PEFT on the 4-bit base) on the recipes validation prompts:
the largest and mean |Δ logit| at the last prompt position, and how often the next token agrees.

    python bench/qlora_merge.py --adapter_dir $LABKIT_HOME/runs/qlora-.../adapter   # lesson 03's run
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit import data, models  # noqa: E402
from labkit.onnx.build import merge_base  # noqa: E402


def last_logits(model, tokenizer, prompts) -> torch.Tensor:
    """The last-position logits of each prompt, one forward pass each (no padding to differ)."""
    rows = []
    with torch.no_grad():
        for p in prompts:
            ids = tokenizer(p, return_tensors="pt")["input_ids"]
            rows.append(model(input_ids=ids).logits[0, -1].float())
    return torch.stack(rows)


def main() -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--adapter_dir", required=True)
    a.add_argument("--n", type=int, default=40, help="validation prompts")
    args = a.parse_args()
    base_dir = models.base_model_path()
    _, tok = models.load_base()
    prompts = [p["prompt"] for p in data.task_pairs("recipes", list(data.load_dataset("recipes")["validation"]))][: args.n]
    trained, _ = models.load_base(quantization="nf4", dtype=torch.float32)
    reference = last_logits(PeftModel.from_pretrained(trained, args.adapter_dir).eval(), tok, prompts)
    rows = {}
    for name, base in (("into the dequantised NF4 weights (labkit now)", merge_base(base_dir, args.adapter_dir)),
                       ("into the original fp32 weights (before)",
                        AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32))):
        merged = PeftModel.from_pretrained(base, args.adapter_dir).merge_and_unload().eval()
        diff = (last_logits(merged, tok, prompts) - reference).abs()
        agree = (last_logits(merged, tok, prompts).argmax(-1) == reference.argmax(-1)).float().mean()
        rows[name] = (diff.max().item(), diff.mean().item(), agree.item())
    print(f"QLoRA adapter {args.adapter_dir}, {len(prompts)} recipes validation prompts; "
          "reference: the trained model (PEFT on the NF4 base)\n")
    print("| merged | max abs Δ logit | mean abs Δ logit | next token agrees |\n|---|---:|---:|---:|")
    for name, (mx, mean, agree) in rows.items():
        print(f"| {name} | {mx:.4f} | {mean:.4f} | {agree:.0%} |")


if __name__ == "__main__":
    main()
