"""`make bench`: every speed figure of the project in one table, written to benchmarks/results.json.

    python benchmarks/run.py [--threads 1] [--reps 5] [--no-compile]     (or: make bench)

Rows come from bench_thinker.py (training step, MFU, bf16, decoding, the
compiled path) and bench_frontends.py (Whisper log-mel, RVQ, Griffin-Lim);
each side-by-side pair is timed alternately, medians over ``--reps``.
docs/performance.md explains every figure. `transformers` and `librosa` are
benchmark extras (pip install -e ".[test]").
"""

from __future__ import annotations

import argparse

import bench_frontends
import bench_thinker
import torch
from table import add_common_args, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"make bench: {torch.get_num_threads()} torch thread(s), {args.reps} reps per side")
    rows = bench_thinker.rows(args)
    rows += bench_frontends.rows(args)
    report(rows, args)


if __name__ == "__main__":
    main()
