"""Metrics → one table, the same text in the terminal and in report.md.

    | metric                | value          | goal         | met |
    |-----------------------|---------------:|--------------|-----|
    | CER (held-out voice)  | 7.312 %        | ≤ 10 %       | yes |
    | codebook usage        | 118            |              | —   |

Columns are padded so the Markdown source lines up in a terminal. Passing a
``{stage: metrics}`` mapping adds a leading ``stage`` column (``omni eval all``).
"""

from __future__ import annotations

import json
import math
from typing import Mapping, Sequence

from omni.evaluation.metric import Metric

NO_GOAL = "—"          # the "met" cell of a metric without a goal


def format_value(m: Metric) -> str:
    """4 significant digits (thousands separated above 10,000), then the unit."""
    v = float(m.value)
    if math.isnan(v) or math.isinf(v):
        text = str(v)
    elif abs(v) >= 10_000:
        text = f"{v:,.0f}"
    else:
        text = f"{v:.4g}"
    return f"{text} {m.unit}" if m.unit else text


def format_met(m: Metric) -> str:
    if m.met is None:
        return NO_GOAL
    return "yes" if m.met else "no"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_table(metrics: Sequence[Metric] | Mapping[str, Sequence[Metric]]) -> str:
    """A Markdown table: metric | value | goal | met (with a stage column for a mapping)."""
    by_stage = isinstance(metrics, Mapping)
    items = [(stage, m) for stage, ms in metrics.items() for m in ms] if by_stage else [(None, m) for m in metrics]
    for stage, m in items:
        if not isinstance(m, Metric):
            where = f" (stage {stage})" if stage else ""
            raise TypeError(f"format_table expects Metric objects{where}, got {type(m).__name__}: {m!r}")
    header = (["stage"] if by_stage else []) + ["metric", "value", "goal", "met"]
    rows = [([stage] if by_stage else []) + [m.name, format_value(m), m.goal, format_met(m)] for stage, m in items]
    rows = [[_cell(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    value_col = header.index("value")

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if i == value_col else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i == value_col else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def metric_rows(metrics: Sequence[Metric] | Mapping[str, Sequence[Metric]]) -> list[dict]:
    """One dict per row, keyed like the table's columns: (stage,) metric, value, unit, goal, met."""
    def row(m: Metric) -> dict:
        return {"metric": m.name, "value": float(m.value), "unit": m.unit, "goal": m.goal, "met": m.met}

    if isinstance(metrics, Mapping):
        return [{"stage": stage, **row(m)} for stage, ms in metrics.items() for m in ms]
    return [row(m) for m in metrics]


def metrics_to_json(metrics: Sequence[Metric] | Mapping[str, Sequence[Metric]]) -> str:
    """The same rows as JSON (:func:`metric_rows`), e.g. runs/demo/metrics.json."""
    return json.dumps(metric_rows(metrics), indent=2, ensure_ascii=False)
