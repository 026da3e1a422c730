"""Build ``../general/general.jsonl``: everyday instructions with the base model's own answers.

    python labkit/datasets/build/make_general.py

Lesson 08 measures *forgetting*: how much a fine-tune changes what the model does outside its task.
The references are SmolLM2-135M-Instruct's own greedy answers (chat template, up to 48 new tokens),
so the base model is the yardstick: the loss of these answers under the base is as low as it gets,
and a fine-tune that raises it has moved the model away from its general behaviour.
Source prompts: ``general_prompts.jsonl`` (written for this course).
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from labkit import evaluate, models  # noqa: E402

MAX_NEW_TOKENS = 48


def main() -> None:
    model, tok = models.load_base()
    prompts = [json.loads(line)["prompt"] for line in (HERE / "general_prompts.jsonl").read_text().splitlines() if line]
    chats = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in prompts]
    answers = evaluate.generate(model, tok, chats, max_new_tokens=MAX_NEW_TOKENS)
    out = HERE.parent / "general" / "general.jsonl"
    with out.open("w") as f:
        for prompt, answer in zip(prompts, answers):
            f.write(json.dumps({"prompt": prompt, "reference": answer.strip()}) + "\n")
    print(f"wrote {len(prompts)} prompts with the base model's answers to {out}")


if __name__ == "__main__":
    main()
