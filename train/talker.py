"""Stage 5 — Talker: text-conditioned TalkerTiny on the RVQ codes of the world's TTS clips.

The entry point users run (``python train/talker.py --preset smoke ...``, or under torchrun); the stage
itself reads top to bottom in omni/stages/talker.py, which ``omni train talker`` runs too.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python train/talker.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.stages.talker import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
