"""`omni tts` as a script: speak text into a wav file with the trained Talker and codec.

    python infer/tts.py "text" -o out.wav [--talker DIR] [--codec DIR]

The command itself lives in the package (omni/commands/infer.py, wired in
omni/cli.py); this file only lets it run from a checkout without installing.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python infer/tts.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["tts", *sys.argv[1:]]))
