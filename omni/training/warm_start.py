"""Start a composite model's parts from other stages' exports, strictly.

An export folder holds ``config.json`` (the stage's config dataclass) and
``model.safetensors``. A part of a composite model is taken from a *prefix* of
that file, with the matching sub-config checked first::

    checkpoints/thinker/export   ThinkerLM      keys "*"           config: the whole file
    checkpoints/audio/export     ASRModel       keys "encoder.*"   config: "encoder"   → OmniModel.audio_encoder
    checkpoints/vision/export    Contrastive…   keys "vision.*"    config: "vision"    → OmniModel.vision

Strict means: the export's sub-config equals the part's config (a difference
names each key and both values); every key the part expects is present under
the prefix, none is unexpected, every shape is equal (each one named). Keys
outside the prefix (the CTC head, the text tower) belong to the other stage
and are not read.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from omni.checkpoint import CheckpointError, load_model_state, read_export_config, read_safetensors


@dataclasses.dataclass(frozen=True)
class PartSource:
    part: str              # attribute of the composite model, e.g. "audio_encoder"
    stage: str             # the stage whose export provides it, e.g. "audio"
    prefix: str            # key prefix in that export's model.safetensors ("" = the whole file)
    config_key: str | None  # key of the part's config in that export's config.json (None = the whole file)
    may_differ: tuple[str, ...] = ()   # config keys that shape no weight (the thinker's ctx_len: RoPE)


def read_export(export: str | Path) -> tuple[dict, Path]:
    """(config.json as a dict, path of model.safetensors) of an export folder, or FileNotFoundError."""
    export = Path(export)
    cfg_path, weights = export / "config.json", export / "model.safetensors"
    for p in (cfg_path, weights):
        if not p.is_file():
            raise FileNotFoundError(f"export incomplete or missing: {p} not found")
    return read_export_config(cfg_path)[0], weights


def check_part_config(exported: dict, expected, where: str, may_differ: tuple[str, ...] = ()) -> list[str]:
    """Raise CheckpointError naming each key whose value differs between the export and the model,
    except the keys in ``may_differ`` (settings that shape no weight); those differences are returned."""
    want = dataclasses.asdict(expected)
    diffs = {k: f"{k}: export {exported.get(k, '<absent>')!r} vs model {want.get(k, '<absent>')!r}"
             for k in sorted(set(want) | set(exported)) if exported.get(k, "<absent>") != want.get(k, "<absent>")}
    refused = [d for k, d in diffs.items() if k not in may_differ]
    if refused:
        raise CheckpointError(f"{where} was trained with another {type(expected).__name__}: " + "; ".join(refused)
                              + " (make the preset's model section equal the export's config)")
    return [d for k, d in diffs.items() if k in may_differ]


def load_part(module: nn.Module, export: str | Path, source: PartSource, part_config) -> tuple[Path, list[str]]:
    """Load ``module`` (a part of a composite model) from ``export`` strictly.

    Returns the weights file and the allowed config differences (``source.may_differ``) found."""
    raw_cfg, weights = read_export(export)
    if source.config_key is None:
        sub = raw_cfg
    elif source.config_key in raw_cfg and isinstance(raw_cfg[source.config_key], dict):
        sub = raw_cfg[source.config_key]
    else:
        raise CheckpointError(f"{export}/config.json has no {source.config_key!r} section for "
                              f"{source.part}; its keys: {sorted(raw_cfg)}")
    allowed = check_part_config(sub, part_config, f"{export}/config.json[{source.config_key or '*'}]",
                                source.may_differ)
    state = read_safetensors(weights)
    picked = {k[len(source.prefix):]: v for k, v in state.items() if k.startswith(source.prefix)}
    if not picked:
        raise CheckpointError(f"{weights} has no keys under {source.prefix!r} (for {source.part}); "
                              f"first keys: {sorted(state)[:6]}")
    load_model_state(module, picked, f"{weights} [{source.prefix or '*'}] → {source.part}")
    return weights, allowed
