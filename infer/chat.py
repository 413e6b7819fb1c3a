"""`omni chat` as a script: ask the omni model a question (image/audio optional), streaming the answer.

    python infer/chat.py [--image PATH] [--audio PATH] "question" [--greedy | --temperature T --top-k K --top-p P] [--max-tokens N] [--seed S] [--ckpt DIR | --text-only]

The command itself lives in the package (omni/commands/infer.py, wired in
omni/cli.py); this file only lets it run from a checkout without installing.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                     # `python infer/chat.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["chat", *sys.argv[1:]]))
