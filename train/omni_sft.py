"""Stage 6 — omni_sft: OmniModel fine-tuned on the world's mixed image/audio/text dialogues.

The entry point users run (``python train/omni_sft.py --preset smoke ...``, or under torchrun); the stage
itself reads top to bottom in omni/stages/omni_sft.py, which ``omni train omni_sft`` runs too.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python train/omni_sft.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.stages.omni_sft import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
