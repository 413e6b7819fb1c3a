"""One number an evaluation reports, with the goal it is held to.

Every stage's ``omni.evaluation.<stage>.evaluate(...)`` returns a list of
:class:`Metric`; :mod:`omni.evaluation.table` prints them as one table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Metric:
    name: str                 # e.g. "CER (held-out voice)"
    value: float
    unit: str = ""            # e.g. "%", "bits/char"
    goal: str = ""            # e.g. "≤ 10 %" (the cpu-preset goal from the issue), "" if none
    met: bool | None = None   # None when there is no goal
