"""The one table of `make bench`: a row per figure, printed and written to benchmarks/results.json."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("results.json")


@dataclass
class Row:
    benchmark: str
    ours: str                  # our figure, with its unit
    reference: str             # what it is set against, with its figure
    ratio: float               # > 1: ours is faster (or, for unit="share", the share itself)
    goal: float | None         # the acceptance goal on ratio (None: a figure to report, no goal)
    ok: bool = True            # a correctness condition of the row (same tokens, max difference)
    unit: str = "x"            # "x" (a speed ratio) or "share" (a percentage, e.g. MFU)

    @property
    def met(self) -> str:
        if not self.ok:
            return "NO (check failed)"
        if self.goal is None:
            return "-"
        return "yes" if self.ratio >= self.goal else "no"

    def cells(self) -> list[str]:
        fmt = (lambda v: f"{v:.0%}") if self.unit == "share" else (lambda v: f"{v:.2f}×")
        goal = "-" if self.goal is None else f"≥ {fmt(self.goal)}"
        return [self.benchmark, self.ours, self.reference, fmt(self.ratio), goal, self.met]


def add_common_args(ap) -> None:
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both sides (default 1: on shared, busy cores a second thread waits "
                         "on the busy core and measures the scheduler, not the code)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions of each side (medians reported)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip the --compile rows")
    ap.add_argument("--out", default=str(RESULTS), help="where to write the JSON results")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores visible, {gpu}; torch {torch.__version__}, {torch.get_num_threads()} threads"


def markdown(rows: list[Row]) -> str:
    head = ["benchmark", "ours", "reference", "ratio", "goal", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def report(rows: list[Row], args) -> None:
    """Print the table (markdown) and write the rows and the machine to args.out."""
    print(f"\n{machine()}\n")
    print(markdown(rows))
    data = {"machine": machine(), "threads": torch.get_num_threads(), "reps": args.reps,
            "rows": [{**asdict(r), "met": r.met} for r in rows]}
    Path(args.out).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


def bench_main(doc: str, rows) -> None:
    """One benchmark script's command line: the common options, the thread count, then ``report(rows(args))``."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    add_common_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report(rows(args), args)
