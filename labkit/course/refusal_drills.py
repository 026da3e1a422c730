"""Lesson 07's refusal drills: adapters that a multi-adapter base cannot run, made on purpose, and
:func:`refused`, which shows whether labkit's load-time checks turn one away.

The checks themselves live in :mod:`labkit.onnx.adapter_files`; this module only builds the bad
inputs a lesson feeds them."""

from __future__ import annotations

from pathlib import Path

from labkit.onnx.adapter_files import AdapterError


def refused(what: str, action) -> bool:
    """Run ``action()`` (a function of no arguments that loads or converts an adapter). When
    labkit refuses it (:class:`labkit.onnx.adapter_files.AdapterError`), print ``what: REFUSED``
    and the message, and return True; when it goes through, print ``what: accepted?!`` and
    return False. Any other error propagates."""
    try:
        action()
    except AdapterError as e:
        print(f"{what}: REFUSED\n    {e}\n")
        return True
    print(f"{what}: accepted?!")
    return False


def adapter_of_another_base(folder, vocab_size: int) -> Path:
    """A LoRA adapter (rank 8 on ``q_proj`` and ``v_proj``) for a tiny random Llama with
    ``vocab_size`` tokens: the Llama is saved in ``folder/base``, the adapter in
    ``folder/adapter``, which is returned. An adapter trained on another base than yours."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    LlamaForCausalLM(config).save_pretrained(folder / "base")
    other = LlamaForCausalLM.from_pretrained(folder / "base")   # loaded, so the adapter names that folder
    get_peft_model(other, LoraConfig(r=8, target_modules=["q_proj", "v_proj"])).save_pretrained(folder / "adapter")
    return folder / "adapter"


def truncated_copy(file, out) -> Path:
    """Write the first half of ``file`` to ``out`` and return ``out``: a file as an interrupted
    copy leaves it."""
    whole = Path(file).read_bytes()
    Path(out).write_bytes(whole[: len(whole) // 2])
    return Path(out)
