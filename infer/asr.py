"""`omni asr` as a script: transcribe an audio file with the trained ASR model.

    python infer/asr.py clip.wav [--ckpt checkpoints/audio/export]

The command itself lives in the package (omni/commands/infer.py, wired in
omni/cli.py); this file only lets it run from a checkout without installing.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python infer/asr.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["asr", *sys.argv[1:]]))
