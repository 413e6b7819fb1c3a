"""Held-out evaluation of every trained stage: ``omni eval <stage>``.

    metric.py      Metric: name, value, unit, goal, met
    table.py       format_table: metrics → one Markdown table (terminal and report.md alike)
    <stage>.py     evaluate(ckpt, data, split="test", device="cpu", **kw) -> list[Metric]
                   for thinker, audio, vision, codec, talker, omni_sft, mufun

Each stage's module is imported only when that stage is evaluated, so a
missing one names itself (see omni/commands/eval.py).
"""

from omni.evaluation.metric import Metric
from omni.evaluation.table import format_table, metrics_to_json

STAGES = ("thinker", "audio", "vision", "codec", "talker", "omni_sft", "mufun")

__all__ = ["Metric", "STAGES", "format_table", "metrics_to_json"]
