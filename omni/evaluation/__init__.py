"""Held-out evaluation of every trained stage: ``omni eval <stage>``.

    metric.py      Metric: name, value, unit, goal, met
    table.py       format_table: metrics → one Markdown table (terminal and report.md alike)
    <stage>.py     evaluate(ckpt, data, split="test", device="cpu", **kw) -> list[Metric]
                   for thinker, audio, vision, codec, talker, omni_sft, mufun

The registry of stages (omni/stages/__init__.py) names each stage's evaluate;
``omni eval`` (omni/commands/eval.py) runs it.
"""

from omni.evaluation.metric import Metric
from omni.evaluation.table import format_table, metrics_to_json

__all__ = ["Metric", "format_table", "metrics_to_json"]
