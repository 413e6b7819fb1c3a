"""Stage 1 — Thinker: next-token pretraining of ThinkerLM on the text corpus.

The entry point users run (``python train/thinker.py --preset smoke ...``, or under torchrun); the stage
itself reads top to bottom in omni/stages/thinker.py, which ``omni train thinker`` runs too.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python train/thinker.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.stages.thinker import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
