"""``omni train <stage>``: run a stage's script from train/ in this process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_stage_script(stage: str, script: str | None = None):
    """Import ``REPO_ROOT/script`` (default train/<stage>.py) as a module named ``train_<stage>``."""
    path = REPO_ROOT / (script or f"train/{stage}.py")
    if not path.is_file():
        raise FileNotFoundError(f"`omni train {stage}` runs {path}, which is missing: "
                                f"training scripts live in the repository checkout (install with pip -e)")
    spec = importlib.util.spec_from_file_location(f"train_{stage}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module            # dataclasses in the script look their module up here
    spec.loader.exec_module(module)
    return module


def run_stage_script(script: str, stage: str, argv: list[str]) -> int:
    """Import ``REPO_ROOT/script`` (e.g. train/thinker.py) and call its ``main(argv)``."""
    return load_stage_script(stage, script).main(argv)
