"""Run the output layer only where the loss is computed: on the answer tokens.

With completion-only loss a training example is a prompt and an answer, and only the answer's
tokens are learned. A causal LM's forward pass still sends *every* position's hidden state
through the output layer (576 -> 49,152 numbers per token for SmolLM2: about a fifth of the
model's FLOPs) and a softmax over the whole vocabulary, and TRL then keeps only the answer
positions. On a GPU, TRL's fused LM head (a Triton kernel) already skips the prompt positions;
on a CPU it scores every position. :class:`AnswerOnlySFTTrainer` does what the kernel does, in
plain PyTorch: the transformer layers on every token (the answer needs the prompt's context),
the output layer and the loss only on the answer tokens. Same loss, same gradients, fewer
FLOPs: ``bench/train_throughput.py`` measures the difference, and lesson 02 shows it.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput
from trl import SFTTrainer


@dataclass
class AnswerLogits(ModelOutput):
    """What a model patched by :func:`add_answer_logits` returns when asked for answer logits."""

    logits: torch.Tensor | None = None   # (n_answer_tokens, vocab), fp32
    targets: torch.Tensor | None = None  # (n_answer_tokens,): the answer tokens to predict


def add_answer_logits(causal_lm) -> None:
    """Patch ``causal_lm.forward`` so that ``model(..., labels=labels, answer_logits=True)``
    returns :class:`AnswerLogits`: the transformer layers run on every token (the answer needs
    the prompt's context), the output layer only where the next token is an answer token
    (``labels != -100``). Without ``answer_logits`` the forward is the original one, so
    generation is unchanged. Patch the causal LM itself (under PEFT: ``get_base_model()``); the
    call goes through the outer model, so PEFT, mixed precision and data parallelism apply.
    (TRL patches the forward the same way for its fused LM head.)"""
    original_forward = causal_lm.forward

    def forward(self, *args, answer_logits=False, labels=None, **kwargs):
        if not answer_logits:
            return original_forward(*args, labels=labels, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        targets = labels[:, 1:]                      # position t predicts token t + 1
        is_answer = targets != -100
        answer_hidden = hidden[:, :-1][is_answer]    # (n_answer_tokens, hidden size)
        lm_head = self.get_output_embeddings()
        weight_dtype = next(lm_head.parameters()).dtype
        with torch.autocast(answer_hidden.device.type, enabled=False):  # few rows: fp32 is cheap
            logits = lm_head(answer_hidden.to(weight_dtype)).float()
        return AnswerLogits(logits=logits, targets=targets[is_answer])

    causal_lm.forward = types.MethodType(forward, causal_lm)


class AnswerOnlySFTTrainer(SFTTrainer):
    """TRL's ``SFTTrainer`` whose loss runs the output layer on the answer tokens only.

    The loss is TRL's: the answer tokens' cross-entropy, summed and divided by the number of
    answer tokens in the batch (``num_items_in_batch`` when gradients are accumulated over
    several batches or averaged over processes). TRL's logged ``entropy`` and
    ``mean_token_accuracy`` are computed on the same answer tokens."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        model = self.model
        add_answer_logits(model.get_base_model() if hasattr(model, "get_base_model") else model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:  # someone wants full logits (compute_metrics): TRL's path builds them
            return super().compute_loss(model, inputs, True, num_items_in_batch)
        out = model(**inputs, answer_logits=True)
        count = out.targets.numel() if num_items_in_batch is None else num_items_in_batch
        loss = F.cross_entropy(out.logits, out.targets, reduction="sum") / torch.as_tensor(count).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # as in TRL and Trainer: num_items_in_batch counts every process's tokens, and
            # data parallelism averages the processes' gradients
            loss = loss * self.accelerator.num_processes
        self._log_answer_metrics(out.logits.detach(), out.targets, inputs)
        return loss

    def _log_answer_metrics(self, logits, targets, inputs) -> None:
        """The metrics TRL logs (entropy, token accuracy, tokens seen), on the answer tokens."""
        mode = "train" if self.model.training else "eval"
        gather = self.accelerator.gather_for_metrics
        log_p = torch.log_softmax(logits, dim=-1)
        n = gather(torch.tensor(targets.numel(), device=logits.device)).sum()
        entropy = gather(-(log_p.exp() * log_p).sum()).sum()
        correct = gather((logits.argmax(-1) == targets).sum()).sum()
        self._metrics[mode]["entropy"].append((entropy / n).item() if n > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((correct / n).item() if n > 0 else 0.0)
        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
