"""Checkpoints: atomic full training state, strict loading, and safetensors export.

A training checkpoint (``<run>/checkpoints/latest.pt`` or ``best.pt``) is one
``torch.save`` dict::

    format, step, updates, model, optimizer, scheduler, scaler, data (epoch, index, ...),
    rng (python, numpy, torch, cuda), skips, best, model_config, model_config_class, train_config

Writing is atomic: the dict goes to ``<name>.tmp`` (flushed and fsynced) and
``os.replace`` swaps it in, so a process killed mid-save leaves the previous
checkpoint intact. Loading uses ``weights_only=True`` (RNG states are stored
as tensors and plain lists for that) and ``load_state_dict(strict=True)``;
missing, unexpected or mis-shaped keys raise :class:`CheckpointError` naming
the file and the keys.

The exported form for inference is ``model.safetensors`` + ``config.json``
(the model config's fields, loadable with ``Config(**json)``). The training
loop adds one key that is not a field, ``"_export"`` (:data:`EXPORT_KEY`):
which weights were exported (``best.pt`` at some step, or the last step's).
:func:`read_export_config` splits it off, so strict loaders never see it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

FORMAT = 1
CHECKPOINT_KEYS = {"format", "step", "updates", "model", "optimizer", "scheduler", "scaler", "data", "rng", "skips",
                   "best", "model_config", "model_config_class", "train_config"}   # what training_state() writes
EXPORT_KEY = "_export"   # config.json's one non-field key: {"weights": "best"|"last", "step": ..., ...}
CHECKPOINTS = Path("checkpoints")   # make demo's root: a stage's export is checkpoints/<stage>/export


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, or not matching the model it is loaded into."""


# ---------------------------------------------------------------------------
# RNG state: python, numpy, torch CPU, and every CUDA device if there is one
# ---------------------------------------------------------------------------
def capture_rng() -> dict:
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(mt_state), gauss],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        if not torch.cuda.is_available():
            raise CheckpointError("checkpoint holds CUDA RNG states but no GPU is visible; the resumed run "
                                  "would not reproduce the original (resume on a GPU, or start a new run)")
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) before building the model and data."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------
# Atomic save and strict load
# ---------------------------------------------------------------------------
def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path.tmp``, fsync, then ``os.replace`` onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict (tensors on CPU), with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (not a checkpoint)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:   # truncated zip, bad pickle
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt "
                              f"({type(err).__name__}: {first})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an omni training checkpoint of format {FORMAT}")
    missing, unknown = sorted(CHECKPOINT_KEYS - set(ckpt)), sorted(set(ckpt) - CHECKPOINT_KEYS)
    if missing or unknown:
        raise CheckpointError(f"{path}: an omni checkpoint of format {FORMAT} holds {sorted(CHECKPOINT_KEYS)}; "
                              f"this one lacks {missing} and has unknown keys {unknown}")
    return ckpt


def tie_aliases(model: nn.Module, state: dict) -> dict:
    """The one tied-weight rule. A weight shared by several names (``lm_head.weight`` is
    ``tok_emb.weight`` when embeddings are tied) is stored once by safetensors and by Hugging Face;
    return ``state`` with every missing alias of a present name added. Parameters are grouped by
    identity, so this works on a model built on ``meta`` too."""
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    full = dict(state)
    for names in groups.values():
        present = [n for n in names if n in full]
        if present and len(names) > 1:
            for n in names:
                full.setdefault(n, full[present[0]])
    return full


def check_state_dict(model: nn.Module, state: dict, source: str) -> None:
    """Raise CheckpointError listing missing, unexpected and mis-shaped keys (before any copy)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append("shape mismatches [" + "; ".join(shapes) + "]")
        raise CheckpointError(f"{source} does not match {type(model).__name__}: " + ", ".join(parts))


def load_model_state(model: nn.Module, state: dict, source: str, assign: bool = False) -> None:
    """The one strict loader: tied aliases re-added (:func:`tie_aliases`), every key and shape checked
    (:func:`check_state_dict`, naming ``source``), then ``load_state_dict(strict=True)``. ``assign``
    keeps the given tensors (a model built on ``meta`` takes them as they are)."""
    state = tie_aliases(model, state)
    check_state_dict(model, state, source)
    model.load_state_dict(state, strict=True, assign=assign)


def class_path(obj) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def check_model_config(ckpt: dict, model_config, path: str | os.PathLike) -> None:
    """The checkpoint's model config must equal the one the model was built from."""
    saved, mine = ckpt["model_config"], dataclasses.asdict(model_config)
    if ckpt["model_config_class"] != class_path(model_config) or saved != mine:
        diff = [f"{k}: checkpoint {saved.get(k, '<absent>')!r} vs now {mine.get(k, '<absent>')!r}"
                for k in sorted(set(saved) | set(mine)) if saved.get(k, "<absent>") != mine.get(k, "<absent>")]
        raise CheckpointError(f"{path}: model config differs from this run's "
                              f"({ckpt['model_config_class']} vs {class_path(model_config)}): {diff}")


# ---------------------------------------------------------------------------
# Export for inference: model.safetensors + config.json
# ---------------------------------------------------------------------------
def export_dir(stage: str, root: str | Path = CHECKPOINTS) -> Path:
    """Default location of a stage's exported weights: ``checkpoints/<stage>/export``."""
    return Path(root) / stage / "export"


def export_safetensors(model: nn.Module, model_config, out_dir: str | os.PathLike,
                       provenance: dict | None = None) -> Path:
    """Write ``out_dir/model.safetensors`` (tied weights stored once) and ``out_dir/config.json``
    (the config's fields, plus ``provenance`` under :data:`EXPORT_KEY` when given)."""
    from safetensors.torch import save_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "model.safetensors.tmp"
    save_model(model, str(tmp))
    os.replace(tmp, out_dir / "model.safetensors")
    fields = dataclasses.asdict(model_config)
    if provenance is not None:
        fields[EXPORT_KEY] = provenance
    (out_dir / "config.json.tmp").write_text(json.dumps(fields, indent=2) + "\n")
    os.replace(out_dir / "config.json.tmp", out_dir / "config.json")
    return out_dir


def export_checkpoint(model: nn.Module, path: str | os.PathLike, model_config, out_dir: str | os.PathLike,
                      provenance: dict) -> Path:
    """Export the weights saved in training checkpoint ``path`` (e.g. ``best.pt``) through ``model``.

    ``model`` lends its structure only: its own weights are put back afterwards.
    """
    ckpt = read_checkpoint(path)
    check_model_config(ckpt, model_config, path)
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    load_model_state(model, ckpt["model"], str(path))
    try:
        return export_safetensors(model, model_config, out_dir, provenance)
    finally:
        model.load_state_dict(own, strict=True)


def read_json_object(path: str | os.PathLike) -> dict:
    """The JSON object in ``path`` (a config.json, an index); CheckpointError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    text = path.read_bytes()
    if not text.strip():
        raise CheckpointError(f"{path}: empty file (expected a JSON object)")
    try:
        raw = json.loads(text.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON, truncated or corrupt ({err})") from err
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object of config fields, got {type(raw).__name__}")
    return raw


def read_export_config(path: str | os.PathLike) -> tuple[dict, dict | None]:
    """(the config's fields, the export's provenance or None) from an export's ``config.json``."""
    raw = read_json_object(path)
    provenance = raw.pop(EXPORT_KEY, None)
    return raw, provenance


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of a ``.safetensors`` file; CheckpointError naming the file when it is unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (expected safetensors weights)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not readable safetensors weights, truncated or corrupt ({err})") from err


def load_exported(out_dir: str | os.PathLike, model_cls: type, config_cls: type) -> nn.Module:
    """Rebuild ``model_cls(config_cls(**config.json))`` and load the safetensors strictly."""
    out_dir = Path(out_dir)
    cfg_path, weights = out_dir / "config.json", out_dir / "model.safetensors"
    for p in (cfg_path, weights):
        if not p.is_file():
            raise FileNotFoundError(f"exported model incomplete: {p} not found")
    fields, _ = read_export_config(cfg_path)
    try:
        cfg = config_cls(**fields)
    except TypeError as err:
        raise CheckpointError(f"{cfg_path} does not fit {config_cls.__name__}: {err}") from err
    model = model_cls(cfg)
    load_model_state(model, read_safetensors(weights), str(weights))
    return model


# ---------------------------------------------------------------------------
# The full training state: what resume needs to continue bit-for-bit
# ---------------------------------------------------------------------------
def training_state(*, step: int, updates: int, model: nn.Module, optimizer, scheduler, scaler, data, skips,
                   best: dict | None, model_config, train_config) -> dict:
    return {"format": FORMAT, "step": step, "updates": updates,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "data": data.state_dict(), "rng": capture_rng(), "skips": skips.state_dict(), "best": best,
            "model_config": dataclasses.asdict(model_config), "model_config_class": class_path(model_config),
            "train_config": dataclasses.asdict(train_config)}


def restore_training_state(ckpt: dict, path: str | os.PathLike, *, model: nn.Module, optimizer, scheduler,
                           scaler, data, skips, model_config) -> None:
    """Put every piece of ``ckpt`` back; the caller reads step, updates and best from the dict."""
    check_model_config(ckpt, model_config, path)
    load_model_state(model, ckpt["model"], str(path))
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt["scaler"]:                       # a disabled scaler saves {}; only fp16 runs carry a scale
        scaler.load_state_dict(ckpt["scaler"])
    data.load_state_dict(ckpt["data"])
    skips.load_state_dict(ckpt["skips"])
    restore_rng(ckpt["rng"])
