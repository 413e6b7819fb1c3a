"""Stage 4 — Codec: the RVQ mel autoencoder on the speech mels of the world's TTS and ASR clips.

The entry point users run (``python train/codec.py --preset smoke ...``, or under torchrun); the stage
itself reads top to bottom in omni/stages/codec.py, which ``omni train codec`` runs too.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python train/codec.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.stages.codec import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
