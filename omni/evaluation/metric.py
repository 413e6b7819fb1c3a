"""One evaluation figure: what ``omni eval <stage>`` prints as a table row."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Metric:
    name: str                 # e.g. "CER (held-out voice)"
    value: float
    unit: str = ""            # e.g. "%", "bits/char"
    goal: str = ""            # e.g. "≤ 10 %" (the cpu-preset goal from the issue), "" if none
    met: bool | None = None   # None when there is no goal
