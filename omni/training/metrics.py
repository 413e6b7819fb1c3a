"""The run's metrics: one JSON object per line in ``<run>/metrics.jsonl``, and the loss-curve PNG.

Records carry ``"kind": "train"`` (one per optimizer step: loss, lr, grad_norm,
throughput, and ``skipped`` with the guard's reason when the step was skipped)
or ``"kind": "eval"`` (the stage's eval_fn result). On resume the file is cut
back to the checkpoint's step, so it always reads as one uninterrupted run.

The PNG is drawn with Pillow alone: axes with ticks, axis labels, a legend, the
training loss and, when eval records hold ``val_loss``, the validation curve.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


class MetricsLog:
    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled          # only rank 0 writes

    def append(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def read(self) -> list[dict]:
        return read_metrics(self.path)

    def truncate_after(self, step: int) -> None:
        """Keep only records with ``step ≤ step`` (the resumed checkpoint's), rewritten atomically."""
        if not self.enabled or not self.path.exists():
            return
        kept = [r for r in self.read() if r["step"] <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Parse a metrics file; a last line cut short by a kill (no newline) is dropped, others must parse."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines.pop()                      # partial final line of a killed process
    out = []
    for n, line in enumerate(lines, 1):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not a JSON record ({err}): {line[:80]!r}") from err
    return out


# ---------------------------------------------------------------------------
# Loss curves with Pillow
# ---------------------------------------------------------------------------
WIDTH, HEIGHT = 720, 440
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 70, 20, 40, 55
TRAIN_COLOUR, VAL_COLOUR, AXIS_COLOUR, GRID_COLOUR = (31, 119, 180), (214, 39, 40), (0, 0, 0), (225, 225, 225)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def plot_losses(records: list[dict], path: str | os.PathLike, title: str = "loss") -> Path:
    """Draw train loss (every non-skipped step) and val_loss (eval records) against step; write a PNG."""
    train = [(r["step"], r["loss"]) for r in records if r["kind"] == "train" and r.get("skipped") is None]
    val = [(r["step"], r["val_loss"]) for r in records if r["kind"] == "eval" and "val_loss" in r]
    points = train + val
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, x1, y0, y1 = MARGIN_L, WIDTH - MARGIN_R, HEIGHT - MARGIN_B, MARGIN_T   # y0 is the bottom
    draw.text((x0, 12), title, fill=AXIS_COLOUR, font=font)
    if points:
        smin, smax = min(p[0] for p in points), max(p[0] for p in points)
        lmin, lmax = min(p[1] for p in points), max(p[1] for p in points)
        if smax == smin:
            smax = smin + 1
        pad = 0.05 * (lmax - lmin) or 0.5
        lmin, lmax = lmin - pad, lmax + pad

        def xy(s, v):
            return (x0 + (s - smin) / (smax - smin) * (x1 - x0), y0 - (v - lmin) / (lmax - lmin) * (y0 - y1))

        for t in _ticks(lmin, lmax):                       # horizontal grid + y tick labels
            _, y = xy(smin, t)
            draw.line([(x0, y), (x1, y)], fill=GRID_COLOUR)
            draw.line([(x0 - 4, y), (x0, y)], fill=AXIS_COLOUR)
            draw.text((8, y - 6), f"{t:.3g}", fill=AXIS_COLOUR, font=font)
        for t in _ticks(smin, smax):                       # x tick labels
            x, _ = xy(t, lmin)
            draw.line([(x, y0), (x, y0 + 4)], fill=AXIS_COLOUR)
            draw.text((x - 10, y0 + 8), f"{t:g}", fill=AXIS_COLOUR, font=font)
        for series, colour in ((train, TRAIN_COLOUR), (val, VAL_COLOUR)):
            pts = [xy(s, v) for s, v in series]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            if len(pts) <= 50 or colour == VAL_COLOUR:       # markers where they stay readable
                for x, y in pts:
                    draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    draw.line([(x0, y1), (x0, y0), (x1, y0)], fill=AXIS_COLOUR, width=1)   # the axes
    draw.text(((x0 + x1) // 2 - 12, HEIGHT - 22), "step", fill=AXIS_COLOUR, font=font)
    draw.text((8, MARGIN_T - 22), "loss", fill=AXIS_COLOUR, font=font)
    for i, (name, colour) in enumerate((("train", TRAIN_COLOUR), ("val", VAL_COLOUR))):   # legend
        lx, ly = x1 - 90, y1 + 8 + 16 * i
        draw.line([(lx, ly + 6), (lx + 20, ly + 6)], fill=colour, width=3)
        draw.text((lx + 26, ly), name, fill=AXIS_COLOUR, font=font)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
