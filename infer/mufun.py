"""`omni mufun` as a script: ask MuFun about a piece of audio, from local full-size checkpoints.

    python infer/mufun.py --audio song.wav [--segment START END] "question" --whisper DIR --qwen DIR --connector FILE [--tokenizer DIR]

The command itself lives in the package (omni/commands/infer.py, wired in
omni/cli.py); this file only lets it run from a checkout without installing.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python infer/mufun.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["mufun", *sys.argv[1:]]))
