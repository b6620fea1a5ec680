"""Tiny models for fast tests: a randomly initialised two-layer Llama with a character-level
tokenizer (token id = character code, 256 = end of sequence), and a scripted variant whose greedy
output is a chosen text, for exact tests of stop sequences and finish reasons."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

EOS = 256


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {chr(i): i for i in range(256)} | {"<eos>": EOS, "<pad>": EOS + 1}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<eos>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", pad_token="<pad>")


def tiny_config(**overrides) -> LlamaConfig:
    values = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, eos_token_id=EOS, pad_token_id=EOS + 1)  # fmt: skip
    return LlamaConfig(**(values | overrides))


def tiny_model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_config()).eval()


def save_tiny_model(path: Path, seed: int = 0) -> Path:
    tiny_model(seed).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


class ScriptedLlama(LlamaForCausalLM):
    """Greedy decoding writes `script` (then end-of-sequence) after a prompt of `prompt_length` tokens."""

    script: str = ""
    prompt_length: int = 0

    def forward(self, *args, position_ids=None, **kwargs):
        out = super().forward(*args, position_ids=position_ids, **kwargs)
        for row, step in enumerate((position_ids[:, -1] + 1 - self.prompt_length).tolist()):
            token = ord(self.script[step]) if step < len(self.script) else EOS
            out.logits[row, -1, token] += 1e4
        return out


def scripted_model(script: str, prompt_length: int) -> ScriptedLlama:
    torch.manual_seed(0)
    model = ScriptedLlama(tiny_config()).eval()
    model.script, model.prompt_length = script, prompt_length
    return model
