"""`make gpu-check`: every stage's ``gpu`` preset, at its real model and batch sizes, for a few dozen
steps under bf16 autocast and under fp16 autocast with the GradScaler, then KV-cached decoding;
one table of steps/s, tokens (or samples)/s, peak GPU memory, skipped steps and final loss.

    python benchmarks/gpu_check.py [--steps 30] [--stages thinker,audio] [--world DIR] [--out DIR]

Meant to take ≤ 8 minutes on one GPU. What it changes in each preset, and why:

* the data is a ``medium`` synthetic world built into ``--out`` (about a minute on one core;
  ``small`` holds fewer speech frames than the codec's batch of 8,192), unless ``--world`` names one;
* the validation sets are cut to a few batches (``VAL_CAPS``): the loop evaluates at its last
  step, and a full validation pass of the 8B MuFun alone would take minutes;
* the talker speaks the codes of this check's own codec run; vision, the talker and omni_sft
  share the thinker run's tokenizer; omni_sft and MuFun start ``--from-scratch`` (MuFun's warm-up
  stage: the connector trains, gradients flow through the whole 8B model), MuFun for
  ``MUFUN_STEPS`` steps only (each is 8 micro-batches of the full model).

Without CUDA it prints one line and exits 0. ``--device cpu --preset smoke`` runs the same
machinery on the tiny presets (the test suite does, so this script is checked without a GPU).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omni.stages import STAGES  # noqa: E402  (in training order)

PRECISIONS = ("bf16", "fp16")
MUFUN_STEPS = 4
WARMUP_STEPS = 3                     # steps left out of the timing (allocator, cuDNN autotuning)
VAL_CAPS = {"val_clips": 16, "val_images": 32, "val_dialogues": 32, "val_questions": 8}
DECODE_TOKENS = 256


@dataclass
class Row:
    stage: str
    precision: str
    steps: int = 0
    steps_per_s: float = math.nan
    rate: str = ""                   # "12,345 tokens/s"
    peak_gib: float = math.nan
    skipped: int = 0
    final_loss: float = math.nan
    wall_s: float = math.nan
    exception: Exception | None = None   # what stopped the row; main raises GpuCheckFailed from it

    @property
    def error(self) -> str:
        return failure(self.exception) if self.exception is not None else ""

    def line(self) -> str:
        if self.error:
            return f"{self.stage:<9} {self.precision:<5} FAILED: {self.error}"
        return (f"{self.stage:<9} {self.precision:<5} {self.steps:>5} {self.steps_per_s:>8.2f} {self.rate:>20} "
                f"{self.peak_gib:>9.2f} {self.skipped:>7} {self.final_loss:>10.4f} {self.wall_s:>7.1f}")


HEADER = (f"{'stage':<9} {'prec':<5} {'steps':>5} {'steps/s':>8} {'throughput':>20} {'peak GiB':>9} "
          f"{'skipped':>7} {'final loss':>10} {'wall s':>7}")


class GpuCheckFailed(RuntimeError):
    """Raised by main after the whole table, naming every failed row (chained from the first failure)."""


class RowFailed(RuntimeError):
    """A row's stage raised: the row (its ``exception`` set) travels to main, which tables it and goes on."""

    def __init__(self, row: Row):
        super().__init__(f"{row.stage} {row.precision}: {row.error}")
        self.row = row


def tabled(make_row, *args) -> Row:
    """The row ``make_row(*args)`` returns, or the failed row it raised (main raises GpuCheckFailed later)."""
    try:
        return make_row(*args)
    except RowFailed as failed:
        return failed.row


def failure(err: Exception) -> str:
    """'TypeName: first line of the message', for the table's error column."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200] if text else ''}"


def check_preset(stage: str, preset: str, out: Path) -> Path:
    """The stage's preset with the validation sets capped (VAL_CAPS), written next to the runs."""
    data = json.loads((ROOT / f"train/configs/{stage}/{preset}.json").read_text())
    for key, cap in VAL_CAPS.items():
        if key in data["data"]:
            data["data"][key] = min(data["data"][key], cap)
    data["train"]["progress"] = False
    path = out / "presets" / f"{stage}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def stage_flags(stage: str, out: Path) -> list[str]:
    """What each stage needs beyond its preset (see the module docstring)."""
    tok_path = out / "thinker-bf16" / "tokenizer.model"
    tok = ["--tokenizer", str(tok_path)] if tok_path.is_file() else []     # else the stage trains its own
    return {"vision": tok,
            "talker": [*tok, "--codec", str(out / "codec-bf16" / "export")],
            "omni_sft": [*tok, "--from-scratch"],
            "mufun": ["--stage", "warmup", "--from-scratch", *tok]}.get(stage, [])


def summarise(row: Row, run_dir: Path) -> Row:
    from omni.training import read_metrics

    recs = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "train"]
    timed = recs[WARMUP_STEPS:] or recs
    row.steps = len(recs)
    row.steps_per_s = len(timed) / sum(r["time_s"] for r in timed)
    for key in ("tokens", "samples"):
        rates = [r[f"{key}_per_s"] for r in timed if f"{key}_per_s" in r]
        if rates:
            row.rate = f"{sum(rates) / len(rates):,.0f} {key}/s"
            break
    row.skipped = sum(r["skipped"] is not None for r in recs)
    losses = [r["loss"] for r in recs if r["loss"] is not None]
    row.final_loss = losses[-1] if losses else math.nan
    return row


def train_row(stage: str, precision: str, args, world: Path) -> Row:
    row, run_dir = Row(stage, precision), args.out / f"{stage}-{precision}"
    steps = MUFUN_STEPS if stage == "mufun" and args.preset == "gpu" else args.steps
    argv = ["--config", str(check_preset(stage, args.preset, args.out)), "--data", str(world), "--out",
            str(run_dir), "--device", args.device, "--precision", precision, "--max-steps", str(steps),
            *stage_flags(stage, args.out)]
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()

    def measured() -> Row:
        row.wall_s = time.perf_counter() - t0
        if args.device == "cuda":
            row.peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30
        return row

    try:
        STAGES[stage].train(argv)
        summarise(row, run_dir)
    except Exception as err:                 # one stage failing must not hide the others' figures:
        row.exception = err                  # re-raised with its row; main tables it, raises GpuCheckFailed
        if args.verbose:
            traceback.print_exc()
        raise RowFailed(measured()) from err
    return measured()


def decode_row(stage: str, precision: str, args) -> Row:
    """KV-cached decoding of the exported thinker (tokens) or talker (frames) under autocast."""
    from omni.exports import load_stage
    from omni.generation.generate import generate
    from omni.generation.sampling import SamplingConfig
    from omni.pipelines.tts import generate_codes

    row = Row(f"{stage}↻", precision)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    try:
        loaded = load_stage(stage, args.out / f"{stage}-{precision}" / "export", args.device)
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with torch.autocast(device_type=torch.device(args.device).type, dtype=dtype):
            t0 = time.perf_counter()
            if stage == "thinker":
                prompt = torch.ones(1, 16, dtype=torch.long, device=args.device)
                n = min(DECODE_TOKENS, loaded.model.cfg.ctx_len - 16)
                out = generate(loaded.model, ids=prompt, sampling=SamplingConfig(max_new_tokens=n))
                made, unit = out.tokens.shape[1], "tokens"
            else:
                text = torch.full((1, 8), 5, dtype=torch.long, device=args.device)
                out = generate_codes(loaded.model, text, ignore_stop=True)
                made, unit = out.codes.shape[1] - 1, "frames"
            if args.device == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        row.steps, row.steps_per_s, row.rate, row.wall_s = made, made / dt, f"{made / dt:,.0f} {unit}/s", dt
        row.final_loss = math.nan
    except Exception as err:                 # re-raised with its row; main tables it, raises GpuCheckFailed
        row.exception = err
        raise RowFailed(row) from err
    if args.device == "cuda":
        row.peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30
    return row


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/gpu_check.py", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30, help="optimizer steps per stage and precision")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--world", default=None, help="synthetic world to train on (default: build a medium one)")
    p.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder)")
    p.add_argument("--device", default="cuda", help="cuda (the check), or cpu with --preset smoke (its test)")
    p.add_argument("--preset", default="gpu", help="gpu (the check) or smoke")
    p.add_argument("--verbose", action="store_true", help="print the traceback of a failing stage")
    args = p.parse_args(argv)
    args.stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        p.error(f"unknown stages {unknown}; stages: {', '.join(STAGES)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
              f"nothing checked")
        return 0
    from omni.data.synth import build

    args.out = Path(args.out or tempfile.mkdtemp(prefix="gpu-check-"))
    world = Path(args.world) if args.world else args.out / "world"
    if not (world / "card.json").is_file():
        build(world, size="medium", seed=0, progress=False)
    name = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    print(f"gpu-check: {name} · torch {torch.__version__} · {args.preset} presets · runs in {args.out}")
    t0, rows = time.perf_counter(), []
    print(HEADER)
    for stage in args.stages:
        for precision in PRECISIONS:
            rows.append(tabled(train_row, stage, precision, args, world))
            print(rows[-1].line(), flush=True)
            if stage in ("thinker", "talker") and not rows[-1].error:
                rows.append(tabled(decode_row, stage, precision, args))
                print(rows[-1].line(), flush=True)
    print(f"\n{HEADER}\n" + "\n".join(r.line() for r in rows))        # again, clear of the stages' logs
    failed = [r for r in rows if r.error]
    print(f"gpu-check: {len(rows) - len(failed)} of {len(rows)} rows ok in {time.perf_counter() - t0:.0f} s"
          + (f"; FAILED: {', '.join(f'{r.stage} {r.precision}' for r in failed)}" if failed else ""))
    if failed:
        raise GpuCheckFailed(f"{len(failed)} of {len(rows)} rows failed: "
                             + "; ".join(f"{r.stage} {r.precision}: {r.error}" for r in failed)) from failed[0].exception
    return 0


if __name__ == "__main__":
    sys.exit(main())
