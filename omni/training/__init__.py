"""The one guarded training loop shared by every stage (seed 004, "Numerical Stability & Safety Checks").

    config.py       TrainConfig and JSON presets (``Config(**data)``: unknown keys raise)
    precision.py    device auto-selection, bf16/fp16/fp32 autocast, the fp16-only GradScaler
    data.py         ShuffledBatches: deterministic, resumable (epoch, index) batches, DDP-sharded
    guards.py       loss validation, gradient-explosion check, consecutive-skip stop
    optim.py        AdamW + warm-up/cosine schedule
    checkpoint.py   atomic checkpoints, strict loading, RNG states, safetensors export
    distributed.py  torchrun / DDP set-up, no_sync on non-final micro-steps
    metrics.py      metrics.jsonl and the Pillow loss-curve PNG
    loop.py         setup() and fit(): the loop itself
"""

from omni.checkpoint import (CheckpointError, export_safetensors, load_exported, read_checkpoint,
                                      read_export_config, seed_everything)
from omni.training.config import TrainConfig, load_preset
from omni.training.data import DataSource, ShuffledBatches
from omni.training.guards import TrainingDiverged
from omni.training.loop import TrainContext, TrainResult, fit, override, setup
from omni.training.metrics import read_metrics

__all__ = ["CheckpointError", "DataSource", "ShuffledBatches", "TrainConfig", "TrainContext", "TrainResult",
           "TrainingDiverged", "export_safetensors", "fit", "load_exported", "load_preset", "override",
           "read_checkpoint", "read_export_config", "read_metrics", "seed_everything", "setup"]
