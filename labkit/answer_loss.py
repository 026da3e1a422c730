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


def postprocess_logits(causal_lm, logits: torch.Tensor) -> torch.Tensor:
    """What some model families do to the output layer's result before the softmax, done here
    too, so the answer-only loss is the model's own loss:

    - Gemma 2/3: ``final_logit_softcapping`` (cap * tanh(logits / cap));
    - Cohere: ``logit_scale`` (logits * scale);
    - Granite: ``logits_scaling`` (logits / scaling).

    A family that does something else is caught by :func:`answer_logits_match` (the trainer then
    computes the loss from the model's own full logits)."""
    config = causal_lm.config
    scale = getattr(causal_lm, "logit_scale", None)          # Cohere keeps it on the model
    if isinstance(scale, (int, float)):
        logits = logits * scale
    scaling = getattr(config, "logits_scaling", None)        # Granite
    if scaling:
        logits = logits / scaling
    cap = getattr(config, "final_logit_softcapping", None)   # Gemma 2 and 3
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def add_answer_logits(causal_lm) -> None:
    """Patch ``causal_lm.forward`` so that ``model(..., labels=labels, answer_logits=True)``
    returns :class:`AnswerLogits`: the transformer layers run on every token (the answer needs
    the prompt's context), the output layer only where the next token is an answer token
    (``labels != -100``), followed by the model's own logit post-processing
    (:func:`postprocess_logits`). Without ``answer_logits`` the class's forward runs, so
    generation is unchanged. Patch the causal LM itself (under PEFT: ``get_base_model()``); the
    call goes through the outer model, so PEFT, mixed precision and data parallelism apply.
    (TRL patches the forward the same way for its fused LM head.)"""
    previous = causal_lm.__dict__.get("forward")   # an earlier patch on this model (TRL's fused LM head), if any
    inner = getattr(previous, "__func__", None)

    def forward(self, *args, answer_logits=False, labels=None, **kwargs):
        if not answer_logits:
            # called with *this* model as self (not a bound method captured here), so a
            # copy.deepcopy of the model runs with the copy's weights
            return (inner or type(self).forward)(self, *args, labels=labels, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        targets = labels[:, 1:]                      # position t predicts token t + 1
        is_answer = targets != -100
        answer_hidden = hidden[:, :-1][is_answer]    # (n_answer_tokens, hidden size)
        lm_head = self.get_output_embeddings()
        weight_dtype = next(lm_head.parameters()).dtype
        with torch.autocast(answer_hidden.device.type, enabled=False):  # few rows: fp32 is cheap
            logits = postprocess_logits(self, lm_head(answer_hidden.to(weight_dtype)).float())
        return AnswerLogits(logits=logits, targets=targets[is_answer])

    causal_lm.forward = types.MethodType(forward, causal_lm)
    causal_lm._forward_before_answer_logits = previous


def remove_answer_logits(causal_lm) -> None:
    """Undo :func:`add_answer_logits`: the forward the model had before."""
    previous = causal_lm.__dict__.pop("_forward_before_answer_logits", None)
    if previous is None:
        causal_lm.__dict__.pop("forward", None)
    else:
        causal_lm.forward = previous


@torch.no_grad()
def answer_logits_match(causal_lm, tokens: int = 8, atol: float = 1e-3) -> bool:
    """Whether the patched model's answer logits equal its ordinary forward's logits on a short
    probe sequence: the live check that the answer-only path computes this model's objective
    (a model family with its own logit post-processing that :func:`postprocess_logits` does not
    know fails it)."""
    device = next(causal_lm.parameters()).device
    ids = (torch.arange(tokens, device=device).unsqueeze(0) * 7 + 3).remainder(causal_lm.config.vocab_size)
    labels = ids.clone()
    labels[:, : tokens // 2] = -100                     # the second half is the "answer"
    was_training = causal_lm.training
    causal_lm.eval()                                    # no dropout: the two passes must see the same network
    try:
        full = causal_lm(input_ids=ids, use_cache=False).logits[0, tokens // 2 - 1: -1].float()
        answer = causal_lm(input_ids=ids, labels=labels, answer_logits=True).logits
    finally:
        causal_lm.train(was_training)
    scale = full.abs().max().clamp(min=1.0)
    return answer.shape == full.shape and bool(((answer - full).abs().max() / scale) < atol)


class AnswerOnlySFTTrainer(SFTTrainer):
    """TRL's ``SFTTrainer`` whose loss runs the output layer on the answer tokens only.

    The loss is TRL's: the answer tokens' cross-entropy, summed and divided by the number of
    answer tokens in the batch (``num_items_in_batch`` when gradients are accumulated over
    several batches or averaged over processes). TRL's logged ``entropy`` and
    ``mean_token_accuracy`` are computed on the same answer tokens."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        model = self.model
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        add_answer_logits(causal_lm)
        self.answer_only = answer_logits_match(causal_lm)
        if not self.answer_only:  # a model whose logits we do not reproduce: its own full forward
            remove_answer_logits(causal_lm)
            print(f"note: {type(causal_lm).__name__} post-processes its logits in a way labkit's answer-only "
                  "output layer does not reproduce; training on the model's own full logits instead (slower, exact).")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:  # someone wants full logits (compute_metrics): TRL's path builds them
            return super().compute_loss(model, inputs, True, num_items_in_batch)
        logits, targets = self._answer_logits(model, inputs)
        count = targets.numel() if num_items_in_batch is None else num_items_in_batch
        loss = F.cross_entropy(logits, targets, reduction="sum") / torch.as_tensor(count).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # as in TRL and Trainer: num_items_in_batch counts every process's tokens, and
            # data parallelism averages the processes' gradients
            loss = loss * self.accelerator.num_processes
        self._log_answer_metrics(logits.detach(), targets, inputs)
        return loss

    def _answer_logits(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 logits at the positions that predict an answer token, and those tokens: from the
        answer-only output layer, or (for a model it cannot reproduce) from the model's own logits."""
        if self.answer_only:
            out = model(**inputs, answer_logits=True)
            return out.logits, out.targets
        full = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        targets = inputs["labels"][:, 1:]
        is_answer = targets != -100
        return full[:, :-1][is_answer].float(), targets[is_answer]

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
