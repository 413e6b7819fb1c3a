"""The options of ``omni demo`` (kept apart so ``omni --help`` need not import the demo)."""

import argparse


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder (report.md, wavs, PNGs, traces)")
    p.add_argument("--smoke", action="store_true", help="seconds-long variant: tiny world, smoke presets")
    p.add_argument("--ckpt", default=None, help="checkpoint root holding <stage>/export folders to reuse and "
                                                "to train into (default checkpoints/; <out>/checkpoints with --smoke)")
    p.add_argument("--world", default=None, help="world folder (default data/small; <out>/world with --smoke)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | mps")
