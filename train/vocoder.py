"""Stage 4b — Vocoder: VocosTiny, the learned vocoder from the speech mel to the waveform.

The entry point users run (``python train/vocoder.py --preset smoke ...``, or under torchrun); the stage
itself reads top to bottom in omni/stages/vocoder.py, which ``omni train vocoder`` runs too.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python train/vocoder.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.stages.vocoder import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
