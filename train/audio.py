"""Stage 2 — Audio: AudioEncoderTiny + a CTC head trained as a character-level speech recogniser.

The entry point users run (``python train/audio.py --preset smoke ...``, or under torchrun); the stage
itself reads top to bottom in omni/stages/audio.py, which ``omni train audio`` runs too.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python train/audio.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.stages.audio import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
