"""A trained stage, loaded for inference: strictly from its exported folder, never untrained.

    checkpoints/<stage>/export/            (``omni train <stage>`` or ``make demo`` writes it)
        config.json          the model config's fields: ``Config(**json)``, unknown keys raise
        model.safetensors    the weights: loaded with ``strict=True``, every key and shape checked
        tokenizer.model      the shared BPE tokenizer (only stages that read text)

    load_stage("thinker", "checkpoints/thinker/export") → LoadedStage(model, tokenizer, folder)

:data:`EXPORTS` says which class each stage exports, whether it ships the
tokenizer and which config field the tokenizer must fit; it is the part of each
stage's entry in :data:`omni.stages.STAGES` that inference and evaluation need,
kept here, below them, so that both load an export the same way. What is
refused, each with a message naming the folder and the fix:

* a missing folder, or one missing any of its files (all missing ones are listed);
* a config.json that does not fit its config class (unknown or impossible fields);
* weights that do not match the model the config builds (missing, unexpected or
  mis-shaped keys, from :func:`omni.checkpoint.load_exported`);
* a tokenizer with more pieces than the model's embedding table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import torch
from torch import nn

from omni.checkpoint import CheckpointError, export_dir, load_exported
from omni.models.asr import ASRConfig, ASRModel
from omni.models.contrastive import ContrastiveConfig, ContrastiveModel
from omni.models.omni_model import OmniConfig, OmniModel
from omni.models.rvq import RVQ, CodecConfig
from omni.models.talker import TalkerConfig, TalkerTiny
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.models.vocoder import VocosConfig, VocosTiny
from omni.mufun.config import MuFunConfig
from omni.mufun.model import MuFunModel
from omni.tokenizer import BPETokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.model"


@dataclass(frozen=True)
class Export:
    model: type                    # the exported nn.Module, built as model(config)
    config: type                   # its config dataclass: config.json holds its fields
    tokenizer: bool                # the export holds tokenizer.model (the stage reads text)
    vocab_field: str | None        # dotted config field the tokenizer's pieces must fit


# stage name → what its export folder holds, in training order (omni.stages.STAGES reads it)
EXPORTS: dict[str, Export] = {
    "thinker": Export(ThinkerLM, ThinkerConfig, True, "vocab_size"),
    "audio": Export(ASRModel, ASRConfig, False, None),
    "vision": Export(ContrastiveModel, ContrastiveConfig, True, "text.vocab_size"),
    "codec": Export(RVQ, CodecConfig, False, None),
    "vocoder": Export(VocosTiny, VocosConfig, False, None),
    "talker": Export(TalkerTiny, TalkerConfig, True, "text_vocab_size"),
    "omni_sft": Export(OmniModel, OmniConfig, True, "thinker.vocab_size"),
    "mufun": Export(MuFunModel, MuFunConfig, True, "qwen3.vocab_size"),
}


def export_entry(stage: str) -> Export:
    """``EXPORTS[stage]``, or a ValueError listing the stages."""
    if stage not in EXPORTS:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(EXPORTS)}")
    return EXPORTS[stage]


class MissingCheckpointError(FileNotFoundError):
    """A stage's export folder is absent or incomplete; ``missing`` lists the absent files."""

    def __init__(self, message: str, folder: Path, missing: list[str]):
        super().__init__(message)
        self.folder = folder
        self.missing = missing


@dataclass
class LoadedStage:
    stage: str
    folder: Path
    model: nn.Module                    # in eval mode, on the requested device
    tokenizer: BPETokenizer | None      # None for stages that read no text (audio, codec)

    @property
    def config(self):
        return self.model.cfg


def required_files(stage: str, export: Export | None = None) -> list[str]:
    """The files a stage's export folder must hold (``export``: the stage's entry, default ``EXPORTS[stage]``)."""
    export = export or export_entry(stage)
    return [CONFIG_FILE, WEIGHTS_FILE] + ([TOKENIZER_FILE] if export.tokenizer else [])


def default_folder(stage: str) -> Path:
    """``checkpoints/<stage>/export``, where ``make demo`` puts a stage's export."""
    return export_dir(stage)


def missing_files(stage: str, folder: str | Path, export: Export | None = None) -> list[str]:
    """Names of the required files not in ``folder`` (all of them when the folder does not exist)."""
    folder = Path(folder)
    return [name for name in required_files(stage, export) if not (folder / name).is_file()]


def check_folder(stage: str, folder: str | Path, flag: str = "--ckpt", export: Export | None = None) -> Path:
    """Raise :class:`MissingCheckpointError` unless ``folder`` holds every file the stage exports.
    ``flag`` is the command-line option that chooses the folder, named in the message."""
    folder = Path(folder)
    missing = missing_files(stage, folder, export)
    if not missing:
        return folder
    fix = f"run `omni train {stage}` or `make demo` (or point {flag} at the {stage} stage's export/ folder)"
    needs = ", ".join(required_files(stage, export))
    if not folder.exists():
        msg = f"no {stage} checkpoint: {folder} does not exist (an export folder holds {needs}); {fix}"
    elif not folder.is_dir():
        msg = f"{stage} checkpoint {folder} is a file; it must be an export folder holding {needs}; {fix}"
    else:
        msg = f"{stage} checkpoint {folder} is incomplete: missing {', '.join(missing)} (needs {needs}); {fix}"
    raise MissingCheckpointError(msg, folder, missing)


def _field(cfg, dotted: str) -> int:
    return int(reduce(getattr, dotted.split("."), cfg))


def load_stage(stage: str, folder: str | Path | None = None, device: str | torch.device = "cpu",
               flag: str = "--ckpt") -> LoadedStage:
    """Load ``stage``'s export from ``folder`` (default ``checkpoints/<stage>/export``), strictly.
    ``flag`` names the command-line option that chose the folder, for the error messages."""
    spec = export_entry(stage)
    folder = check_folder(stage, default_folder(stage) if folder is None else folder, flag)
    model_cls, config_cls = spec.model, spec.config
    fix = f"re-export it with `omni train {stage}`: config.json and model.safetensors must come from one run"
    try:
        model = load_exported(folder, model_cls, config_cls)
    except CheckpointError as err:
        raise CheckpointError(f"{stage} checkpoint {folder}: {err}; {fix}") from err
    except AssertionError as err:        # a config invariant (e.g. d_model % n_heads) broken by config.json
        raise CheckpointError(f"{stage} checkpoint {folder}: {folder / CONFIG_FILE} describes an impossible "
                              f"{config_cls.__name__}: {err}") from err
    tokenizer = None
    if spec.tokenizer:
        tokenizer = BPETokenizer(folder / TOKENIZER_FILE)
        if spec.vocab_field is not None and tokenizer.vocab_size > _field(model.cfg, spec.vocab_field):
            raise CheckpointError(f"{stage} checkpoint {folder}: {TOKENIZER_FILE} has {tokenizer.vocab_size} pieces "
                                  f"but the model's {spec.vocab_field} is {_field(model.cfg, spec.vocab_field)}; "
                                  f"{fix}")
    return LoadedStage(stage, folder, model.to(device).eval(), tokenizer)
