"""MuFun's two-stage recipe (seed 003): warm up the connector, then fine-tune everything, on music QA.

The entry point users run (``python train/mufun.py --preset smoke ...``, or under torchrun); the stage
itself reads top to bottom in omni/stages/mufun.py, which ``omni train mufun`` runs too.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python train/mufun.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.stages.mufun import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
