"""Architectures for from-scratch models: seed 003's JSON schema, mapped onto transformers' classes.

A trained checkpoint is then an ordinary transformers model directory: eval, probes, steering and
LoRA use it like any pretrained model. Each combination of options maps to the class that has
exactly those parts; combinations no class has are refused with the ones that exist.

| position | norm      | activation  | class     | notes                                        |
|----------|-----------|-------------|-----------|----------------------------------------------|
| rope     | layernorm | gelu, relu  | GPT-NeoX  | sequential residual, biases                  |
| rope     | layernorm | swiglu      | StableLM  | gated MLP, no biases                         |
| rope     | rmsnorm   | swiglu      | Phi-3     | gated MLP, residual + embedding dropout      |
| rope     | rmsnorm   | gelu, relu  | Arcee     | plain MLP; no residual dropout in the class  |
| learned  | layernorm | gelu, relu  | GPT-2     | biases                                       |

Embeddings are untied by default, as in the seeds: their 29,180,928 (L8 H512, 8K vocab) and
28.36M (L4 H256, GPT-2 vocab) parameter counts only add up with a separate output matrix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slmlab.errors import UserError
from slmlab.validation import describe_error

FAMILIES = {
    ("rope", "layernorm", "gelu"): "gpt_neox",
    ("rope", "layernorm", "relu"): "gpt_neox",
    ("rope", "layernorm", "swiglu"): "stablelm",
    ("rope", "rmsnorm", "swiglu"): "phi3",
    ("rope", "rmsnorm", "gelu"): "arcee",
    ("rope", "rmsnorm", "relu"): "arcee",
    ("learned", "layernorm", "gelu"): "gpt2",
    ("learned", "layernorm", "relu"): "gpt2",
}
NO_RESIDUAL_DROPOUT = {"arcee"}
# Seed 003's architecture as a file: `slmlab train --arch-json examples/seed003_arch.json ...`.
EXAMPLE = "examples/seed003_arch.json"


class ArchConfig(BaseModel):
    """Seed 003's architecture JSON; the last three fields are slmlab's, with defaults."""

    model_config = ConfigDict(extra="forbid")

    arch_type: Literal["transformer"] = "transformer"
    num_layers: int = Field(gt=0)
    hidden_dim: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    ffn_multiplier: float = Field(4.0, gt=0)
    normalization: Literal["layernorm", "rmsnorm"] = "layernorm"
    activation: Literal["gelu", "swiglu", "relu"] = "gelu"
    position_encoding: Literal["rope", "learned"] = "rope"
    attention_dropout: float = Field(0.0, ge=0, lt=1)
    residual_dropout: float = Field(0.0, ge=0, lt=1)
    max_seq_len: int = Field(1024, gt=0)
    tie_embeddings: bool = False
    init_std: float = Field(0.02, gt=0)

    @field_validator("arch_type", mode="before")
    @classmethod
    def _transformer_only(cls, value):
        if value != "transformer":
            raise ValueError(f"arch_type must be \"transformer\", not {value!r}: the only type; the class follows "
                             "from position_encoding, normalization and activation")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ArchConfig:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if (self.hidden_dim // self.num_heads) % 2 and self.position_encoding == "rope":
            raise ValueError("rope needs an even head size (hidden_dim / num_heads)")
        key = (self.position_encoding, self.normalization, self.activation)
        if key not in FAMILIES:
            raise ValueError(
                f"no transformers class combines {' + '.join(key)}; learned positions come with layernorm "
                "and gelu or relu (GPT-2): use position_encoding rope for rmsnorm or swiglu"
            )
        if self.family in NO_RESIDUAL_DROPOUT and self.residual_dropout:
            raise ValueError(
                "rmsnorm with a plain gelu/relu MLP maps to Arcee, which has no residual dropout: "
                "set residual_dropout to 0 or use activation swiglu"
            )
        return self

    @property
    def family(self) -> str:
        return FAMILIES[(self.position_encoding, self.normalization, self.activation)]

    @property
    def ffn_dim(self) -> int:
        return int(round(self.hidden_dim * self.ffn_multiplier))

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads


def load_arch(path: str | Path) -> ArchConfig:
    """Read an architecture JSON file, with one clear line for each kind of mistake."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"architecture file {path} does not exist (an example: {EXAMPLE})") from None
    except IsADirectoryError:
        raise UserError(
            f"architecture file {path} is a directory: give a JSON file such as {EXAMPLE}"
        ) from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text: give a JSON file such as {EXAMPLE}") from None
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); see {EXAMPLE}"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot read architecture file {path}: {exc.strerror or exc}") from None
    return parse_arch(data, str(path))


def parse_arch(data: object, source: str = "architecture") -> ArchConfig:
    if not isinstance(data, dict):
        raise UserError(
            f"{source} must be a JSON object with num_layers, hidden_dim, num_heads, ... (see {EXAMPLE})"
        )
    try:
        return ArchConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(describe_error(exc, source, ArchConfig.model_fields)) from None


def build_config(arch: ArchConfig, vocab_size: int, eos_id: int, pad_id: int | None = None):
    """The transformers config of the class `arch` maps onto."""
    import transformers

    common = dict(vocab_size=vocab_size, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id,
                  tie_word_embeddings=arch.tie_embeddings, initializer_range=arch.init_std)  # fmt: skip
    sizes = dict(hidden_size=arch.hidden_dim, num_hidden_layers=arch.num_layers,
                 num_attention_heads=arch.num_heads, intermediate_size=arch.ffn_dim,
                 max_position_embeddings=arch.max_seq_len)  # fmt: skip
    act = {"gelu": "gelu", "relu": "relu", "swiglu": "silu"}[arch.activation]
    family = arch.family
    if family == "gpt_neox":
        return transformers.GPTNeoXConfig(
            **common, **sizes, hidden_act=act, rotary_pct=1.0, use_parallel_residual=False,
            attention_dropout=arch.attention_dropout, hidden_dropout=arch.residual_dropout,
        )  # fmt: skip
    if family == "stablelm":
        return transformers.StableLmConfig(
            **common, **sizes, hidden_act=act, partial_rotary_factor=1.0, num_key_value_heads=arch.num_heads,
            attention_dropout=arch.attention_dropout, hidden_dropout=arch.residual_dropout,
        )  # fmt: skip
    if family == "phi3":
        return transformers.Phi3Config(
            **common, **sizes, hidden_act=act, num_key_value_heads=arch.num_heads,
            attention_dropout=arch.attention_dropout, resid_pdrop=arch.residual_dropout,
            embd_pdrop=arch.residual_dropout, original_max_position_embeddings=arch.max_seq_len,
        )  # fmt: skip
    if family == "arcee":
        return transformers.ArceeConfig(
            **common, **sizes, hidden_act=act, num_key_value_heads=arch.num_heads,
            attention_dropout=arch.attention_dropout,
        )  # fmt: skip
    return transformers.GPT2Config(
        **common, n_embd=arch.hidden_dim, n_layer=arch.num_layers, n_head=arch.num_heads,
        n_inner=arch.ffn_dim, n_positions=arch.max_seq_len, activation_function=act,
        attn_pdrop=arch.attention_dropout, resid_pdrop=arch.residual_dropout,
        embd_pdrop=arch.residual_dropout,
    )  # fmt: skip


def build_model(arch: ArchConfig, vocab_size: int, eos_id: int, pad_id: int | None = None, seed: int = 0):
    """A freshly initialised causal LM (deterministic for a seed)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = build_config(arch, vocab_size, eos_id, pad_id)
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config)


def parameter_count(arch: ArchConfig, vocab_size: int) -> int:
    """Parameters by formula, per family; tests hold it equal to the built model's count."""
    h, f, layers = arch.hidden_dim, arch.ffn_dim, arch.num_layers
    family = arch.family
    embeddings = vocab_size * h * (1 if arch.tie_embeddings else 2)
    if family == "gpt_neox":  # LayerNorm weight+bias; every linear has a bias
        layer = 2 * 2 * h + (3 * h * h + 3 * h) + (h * h + h) + (h * f + f) + (f * h + h)
        return embeddings + layers * layer + 2 * h
    if family == "gpt2":  # as GPT-NeoX plus a learned position table
        layer = 2 * 2 * h + (3 * h * h + 3 * h) + (h * h + h) + (h * f + f) + (f * h + h)
        return embeddings + arch.max_seq_len * h + layers * layer + 2 * h
    if family == "stablelm":  # LayerNorm weight+bias; gated MLP; no linear biases
        layer = 2 * 2 * h + 4 * h * h + 3 * h * f
        return embeddings + layers * layer + 2 * h
    if family == "phi3":  # RMSNorm weight only; gated MLP; no biases
        layer = 2 * h + 4 * h * h + 3 * h * f
        return embeddings + layers * layer + h
    layer = 2 * h + 4 * h * h + 2 * h * f  # arcee: RMSNorm; plain MLP; no biases
    return embeddings + layers * layer + h


def describe(arch: ArchConfig, vocab_size: int) -> dict:
    """What the comparison table and the training summary say about a model's size."""
    params = parameter_count(arch, vocab_size)
    return {
        "family": arch.family,
        "parameters": params,
        "non_embedding_parameters": params - vocab_size * arch.hidden_dim * (1 if arch.tie_embeddings else 2),
        "vocab_size": vocab_size,
        "parameters_per_vocab_item": round(params / vocab_size, 1),
    }
