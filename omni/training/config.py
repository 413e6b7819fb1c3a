"""The training loop's settings (:class:`TrainConfig`) and stage presets read from JSON.

A stage preset is one JSON file with one object per section, e.g.
``train/configs/thinker/smoke.json``::

    {"model": {...ThinkerConfig...}, "data": {...ThinkerDataConfig...}, "train": {...TrainConfig...}}

:func:`load_preset` builds every section with ``Config(**data)``, so an unknown
or misspelt key raises a ``TypeError`` naming the file and the section, and a
missing or extra section is an error too. Defaults live only in the dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

PRECISIONS = ("auto", "bf16", "fp16", "fp32")

# The project's presets, found from the package's location so a command works from any directory:
# <repository>/train/configs/<stage>/<name>.json. A path given with --config stays relative to the
# current directory, as every other path on the command line.
PRESETS_DIR = Path(__file__).resolve().parents[2] / "train" / "configs"


def preset_path(stage: str, name: str) -> Path:
    """The preset ``name`` of ``stage`` (``PRESETS_DIR/<stage>/<name>.json``), or a FileNotFoundError
    that names the file it looked for and the presets that exist."""
    path = PRESETS_DIR / stage / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in (PRESETS_DIR / stage).glob("*.json"))
        raise FileNotFoundError(f"no preset {name!r} for stage {stage!r}: {path} not found; presets: {known}")
    return path


class PresetError(ValueError, TypeError):
    """A preset file that cannot be used: not JSON, wrong sections, or a section its dataclass refuses.
    (A TypeError too: an unknown key has always raised one.) The message names the file."""


@dataclass
class TrainConfig:
    seed: int = 0
    max_steps: int = 1000              # optimizer-step attempts (a skipped step counts: it consumed data)
    batch_size: int = 16               # samples per micro-batch, per process
    grad_accum_steps: int = 1          # micro-batches per optimizer step (effective batch: × batch_size × world)
    # --- optimizer: AdamW, linear warm-up then cosine decay to min_lr ---
    lr: float = 3e-4
    min_lr: float = 3e-5
    warmup_steps: int = 100
    weight_decay: float = 0.1          # applied to matrices only (dim ≥ 2), never to norms/biases
    betas: tuple[float, float] = (0.9, 0.95)
    # --- guards (seed 004, "Numerical Stability & Safety Checks") ---
    loss_min: float = -1e6             # a loss outside [loss_min, loss_max] (or NaN/Inf) skips the step
    loss_max: float = 1e6
    explode_grad_norm: float = 100.0   # total grad norm above this (or non-finite) skips the step
    max_grad_norm: float = 1.0         # clip to this norm before stepping
    max_consecutive_skips: int = 10    # this many skipped steps in a row stop training with a diagnostic
    # --- precision and device ---
    precision: str = "auto"            # auto | bf16 | fp16 | fp32 (auto: bf16 or fp16 on a GPU, fp32 on CPU)
    fp16_init_scale: float = 2.0 ** 16  # GradScaler's first loss scale (fp16 only)
    device: str = "auto"               # auto | cpu | cuda | cuda:N | mps
    compile: bool = False              # torch.compile every transformer block (omni.nn.compiled); eager if False
    # --- checkpoints, evaluation, logging ---
    checkpoint_freq: int = 500         # save latest.pt every this many steps (and at a new best, and at the end)
    eval_freq: int = 500               # run the stage's eval_fn every this many steps (and at the end)
    best_metric: str | None = None     # key of eval_fn's result that picks best.pt (None: no best.pt)
    best_mode: str = "min"             # min | max
    export: str = "best"               # best | last: weights in <run>/export (best: best.pt when there is one)
    progress: bool = True              # show the tqdm bar (rank 0 only)

    def __post_init__(self):
        self.betas = tuple(self.betas)  # JSON gives a list
        positive = ("max_steps", "batch_size", "grad_accum_steps", "checkpoint_freq", "eval_freq",
                    "max_consecutive_skips")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.export not in ("best", "last"):
            raise ValueError(f"TrainConfig.export must be 'best' or 'last', got {self.export!r}")
        if self.best_mode not in ("min", "max"):
            raise ValueError(f"TrainConfig.best_mode must be 'min' or 'max', got {self.best_mode!r}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"TrainConfig needs 0 ≤ min_lr ≤ lr, got min_lr={self.min_lr}, lr={self.lr}")
        if self.loss_min >= self.loss_max:
            raise ValueError(f"TrainConfig needs loss_min < loss_max, got {self.loss_min} ≥ {self.loss_max}")
        if not 0 < self.max_grad_norm <= self.explode_grad_norm:
            raise ValueError(f"TrainConfig needs 0 < max_grad_norm ≤ explode_grad_norm, got "
                             f"{self.max_grad_norm} and {self.explode_grad_norm}")
        if len(self.betas) != 2:
            raise ValueError(f"TrainConfig.betas must hold two numbers, got {self.betas}")


def load_preset(path: str | os.PathLike, sections: dict[str, type]) -> dict[str, object]:
    """Read a JSON preset and build one dataclass per section: ``{"train": TrainConfig, ...}``.

    The file must hold exactly the sections asked for; each is built with
    ``cls(**data)``, so unknown keys raise with the file and section named.
    """
    path = Path(path)
    if not path.is_file():
        where = f" (looked in {Path.cwd()})" if not path.is_absolute() else ""
        raise FileNotFoundError(f"config file not found: {path}{where}; a project preset by name: --preset NAME "
                                f"(the files in {PRESETS_DIR})")
    text = path.read_bytes()
    if not text.strip():
        raise PresetError(f"{path}: empty file (expected a JSON object with sections {sorted(sections)})")
    try:
        raw = json.loads(text.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PresetError(f"{path}: not valid JSON, truncated or corrupt ({err})") from err
    if not isinstance(raw, dict):
        raise PresetError(f"{path}: expected a JSON object with sections {sorted(sections)}")
    if set(raw) != set(sections):
        missing, extra = sorted(set(sections) - set(raw)), sorted(set(raw) - set(sections))
        raise PresetError(f"{path}: sections must be {sorted(sections)}; missing {missing}, unexpected {extra}")
    built = {}
    for name, cls in sections.items():
        if not isinstance(raw[name], dict):
            raise PresetError(f"{path} [{name}]: expected an object of {cls.__name__} fields, "
                              f"got {type(raw[name]).__name__}")
        try:
            built[name] = cls(**raw[name])
        except (TypeError, ValueError, AssertionError) as err:   # unknown key, wrong type, broken invariant
            known = [f.name for f in dataclasses.fields(cls)]
            raise PresetError(f"{path} [{name}] does not fit {cls.__name__}: {err}; known keys: {known}") from err
    return built


def config_dict(cfg) -> dict:
    """A dataclass config as a plain dict (what checkpoints and config.json store)."""
    return dataclasses.asdict(cfg)


def config_diff(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two config dicts: ``['lr: 0.001 → 0.0003', ...]``."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k, '<absent>')!r} → {new.get(k, '<absent>')!r}"
            for k in keys if old.get(k, "<absent>") != new.get(k, "<absent>")]


__all__ = ["TrainConfig", "PRECISIONS", "PresetError", "load_preset", "config_dict", "config_diff"]
