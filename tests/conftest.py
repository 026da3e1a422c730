"""Shared fixtures for the unit tests: a tiny byte-level BPE tokenizer trained offline and a
tiny random Llama built from a config. Nothing is downloaded; both take well under a second."""

import pytest

TONE_LABELS = ["joy", "anger", "sadness", "fear", "neutral"]

_CORPUS = [
    "Finally caught the northern lights after three nights of trying -> joy",
    "Our server crashed because someone pushed to prod without testing -> anger",
    "it sucks eating dinner alone every night -> sadness",
    "I heard footsteps downstairs and nobody else is home -> fear",
    "The league schedule has us playing every other Saturday -> neutral",
    "Recipe: toss the eggs with milk and flour, then bake",
    'Ingredients: ["eggs", "milk", "flour"]',
    "SELECT name FROM customers WHERE city = 'Paris'",
    "very happy, very sad, the cat sat on the mat",
]


def build_tokenizer(add_bos: bool = False):
    """A byte-level BPE tokenizer (like the real base models'), padded with ``</s>``. With
    ``add_bos`` it puts ``<s>`` before every text, as Llama 3's and Mistral's tokenizers do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    labels = [f"x -> {label}" for label in TONE_LABELS]
    tok.train_from_iterator(_CORPUS * 5 + labels * 20, trainer)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>", unk_token="<unk>")


def build_model(tokenizer, seed: int = 0):
    """A tiny random LlamaForCausalLM (hidden 32, 2 layers, 4 heads, 2 kv heads), float32, eval."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        initializer_range=0.2, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).float().eval()


FAMILIES = ("llama", "qwen2", "gemma2", "phi3", "mistral", "granite", "cohere")


def build_family_model(family: str, tokenizer, seed: int = 0):
    """A tiny random causal LM of another family, with the features that make it differ:
    Gemma 2's final-logit softcapping, Granite's logits scaling, Cohere's logit scale, Qwen2's
    biases, Phi-3's fused projections, Mistral's sliding window."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  initializer_range=0.2, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    configs = {
        "llama": lambda: tf.LlamaConfig(**common),
        "qwen2": lambda: tf.Qwen2Config(**common),
        "gemma2": lambda: tf.Gemma2Config(**common, head_dim=8, final_logit_softcapping=2.0,
                                          attn_logit_softcapping=50.0, query_pre_attn_scalar=8),
        "phi3": lambda: tf.Phi3Config(**common),
        "mistral": lambda: tf.MistralConfig(**common, sliding_window=64),
        "granite": lambda: tf.GraniteConfig(**common, logits_scaling=4.0),
        "cohere": lambda: tf.CohereConfig(**common, logit_scale=0.5),
    }
    return tf.AutoModelForCausalLM.from_config(configs[family]()).float().eval()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    import torch

    # one thread: the model is tiny, and extra threads only fight over shared CPU cores
    torch.set_num_threads(1)
    return build_model(tiny_tokenizer)


@pytest.fixture()
def tiny_folder(tmp_path, tiny_tokenizer):
    """The tiny model and its tokenizer saved as a local model folder (what `--model_name_or_path` takes)."""
    folder = tmp_path / "tiny-llama"
    build_model(tiny_tokenizer).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def one_process_run(tmp_path_factory):
    """tests/ddp_worker.py in one process with batch 8: the run that the data-parallel tests
    (two processes, two hosts, a killed node) must reproduce. Its result.json, as a dict."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path_factory.mktemp("one-process") / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(root), "LABKIT_HOME": str(out.parent / "home")}
    run = subprocess.run([sys.executable, str(root / "tests" / "ddp_worker.py"), str(out), "8"], capture_output=True,
                         text=True, env=env, cwd=root, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads((out / "result.json").read_text())
