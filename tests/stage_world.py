"""The small synthetic world the stage tests share (not a test module itself).

Built once per test session into pytest's base temporary folder, whichever
stage test asks first (~3 s); later callers find its card.json and reuse it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from omni.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]


def small_world(tmp_path_factory) -> Path:
    from omni.data.synth import build

    world = tmp_path_factory.getbasetemp() / "stage-world-small"
    if not (world / "card.json").is_file():
        build(world, size="small", seed=0, progress=False)
    return world


def run_stage(stage: str, argv: list[str]) -> int:
    """Run a stage script's main() with one intra-op thread (tiny models on a shared 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return STAGES[stage].train(argv)              # omni/stages/<stage>.py main(), as `omni train` runs it
    finally:
        torch.set_num_threads(threads)
