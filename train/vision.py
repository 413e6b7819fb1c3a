"""Stage 3 — Vision: ViTTiny trained contrastively against a small text tower on image–caption pairs.

The entry point users run (``python train/vision.py --preset smoke ...``, or under torchrun); the stage
itself reads top to bottom in omni/stages/vision.py, which ``omni train vision`` runs too.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python train/vision.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.stages.vision import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
