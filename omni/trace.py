"""The shape tracer: records every named intermediate tensor of a forward pass.

A learner runs ``omni trace text "Hello, how are you?"`` and sees the seed's
dimension-tracking table (seed 000: stage, step, description, shape, numbers,
bf16 memory) produced by the code itself, so the documents and the model cannot
drift apart.

Model code calls :func:`record` at the places the seeds document. When no tracer
is active, :func:`record` returns at once, so the hot path pays one global read.

Every call into this module is one statement a reader can delete without touching another line,
leaving the plain computation: a record on its own line after the tensor it records, a stage as a
decorator on the function that makes it (``@trace.stage("thinker")``) or as the ``stage=`` of a
single record, and :func:`mute` / ``mute(False)`` around a repeated call.

Tensors on the ``meta`` device carry shapes but no memory, so a full-size model
(Whisper-large-v3 + Qwen3-8B) traces in seconds::

    with Tracer() as tr:
        model(ids)
    print(tr.table())

Models never mute themselves: a full-size dry run asks for ``Tracer(fold=True)``, which keeps layer 0
of each stack and the first of any repeated record (the other Whisper chunks), as seed 000's table does.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

import torch

BF16_BYTES = 2
# Records say where they were made relative to this folder (the repository root, or
# site-packages for an installed copy): "omni/models/thinker.py:123".
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LATER_LAYER = re.compile(r"\.layer[1-9][0-9]*\.")     # "qwen3.layer7.attn.q": a layer after layer 0


@dataclass
class TraceRecord:
    stage: str          # pipeline stage, e.g. "thinker" or "audio encoder"
    step: int           # 1-based step number inside the whole trace
    name: str           # dotted identifier, e.g. "thinker.layer0.attn.q"
    desc: str           # one-line description for the table
    shape: tuple[int, ...]
    numel: int
    bf16_bytes: int     # memory the tensor would take in bf16
    where: str = ""     # the code line that recorded it, "omni/nn/attention.py:88" (relative to ROOT)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


@dataclass
class Tracer:
    """Collects :class:`TraceRecord` s while active (use as a context manager)."""

    records: list[TraceRecord] = field(default_factory=list)
    fold: bool = False      # drop records of layers after layer 0 and records whose name was already recorded
    _stage: str = "main"
    _prev: "Tracer | None" = None
    _muted: bool = False
    _scope_muted: bool = False    # _muted when the innermost stage began: what mute(False) returns to

    def __enter__(self) -> "Tracer":
        global _ACTIVE
        self._prev, _ACTIVE = _ACTIVE, self
        return self

    def __exit__(self, *exc) -> None:
        global _ACTIVE
        _ACTIVE = self._prev

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Records made inside are in stage ``name``; at the end the stage and the muting before it return."""
        saved = self._stage, self._muted, self._scope_muted
        self._stage, self._scope_muted = name, self._muted
        try:
            yield
        finally:
            self._stage, self._muted, self._scope_muted = saved

    def mute(self, on: bool = True) -> None:
        """Drop the records that follow (``on``), or keep them again; an outer mute stays (see :func:`mute`)."""
        self._muted = on or self._scope_muted

    def add(self, name: str, shape: Sequence[int], desc: str = "", where: str | None = None,
            stage: str | None = None, always: bool = False) -> None:
        """Append a record (in ``stage``, default the current one; ``always``: also while muted);
        ``where`` defaults to the line that called ``add``."""
        if self._muted and not always or self.fold and (LATER_LAYER.search(name)
                                                        or name in {r.name for r in self.records}):
            return
        shape = tuple(int(s) for s in shape)
        numel = math.prod(shape)
        where = caller_location(1) if where is None else where
        self.records.append(TraceRecord(stage or self._stage, len(self.records) + 1, name, desc, shape, numel,
                                        numel * BF16_BYTES, where))

    # -- queries used by tests and the CLI ---------------------------------
    def shapes(self, name: str) -> list[tuple[int, ...]]:
        """All shapes recorded under exactly ``name`` (in order)."""
        return [r.shape for r in self.records if r.name == name]

    def shape(self, name: str) -> tuple[int, ...]:
        """The single shape recorded under ``name``; raises if it is missing or repeated."""
        found = self.shapes(name)
        if len(found) != 1:
            known = sorted({r.name for r in self.records})
            raise KeyError(f"trace name {name!r} recorded {len(found)} times (want 1); names: {known}")
        return found[0]

    def to_json(self) -> str:
        return json.dumps([r.to_dict() for r in self.records], indent=1)

    def table(self) -> str:
        """Markdown table in the seed's column order."""
        rows = ["| stage | step | name | description | shape | numbers | bf16 memory | code |",
                "|---|---:|---|---|---|---:|---:|---|"]
        for r in self.records:
            rows.append(f"| {r.stage} | {r.step} | {r.name} | {r.desc} | {format_shape(r.shape)} | {r.numel:,} "
                        f"| {format_bytes(r.bf16_bytes)} | {r.where} |")
        return "\n".join(rows)


_ACTIVE: Tracer | None = None


def active() -> Tracer | None:
    return _ACTIVE


def caller_location(depth: int = 1) -> str:
    """``"path:line"`` of the frame ``depth`` levels above the caller (path relative to
    :data:`ROOT` when inside it). Only called while tracing: the hot path never pays for it."""
    frame = sys._getframe(depth + 1)
    path = os.path.abspath(frame.f_code.co_filename)
    if path.startswith(ROOT + os.sep):
        path = os.path.relpath(path, ROOT).replace(os.sep, "/")
    return f"{path}:{frame.f_lineno}"


def record(name: str, x: torch.Tensor | Sequence[int], desc: str = "", stage: str | None = None):
    """Record ``x`` (a tensor, or a shape for tensors never materialised such as
    SDPA's attention scores) under ``name`` when a tracer is active; return ``x``.
    ``stage`` names the pipeline stage of this record alone (default: the current stage)."""
    if _ACTIVE is not None:
        _ACTIVE.add(name, x.shape if isinstance(x, torch.Tensor) else x, desc, caller_location(1), stage)
    return x


def record_always(name: str, x, desc: str = "", stage: str | None = None):
    """Like :func:`record` but also while muted (for the one summary line per step)."""
    if _ACTIVE is not None:
        _ACTIVE.add(name, x.shape if isinstance(x, torch.Tensor) else x, desc, caller_location(1), stage,
                    always=True)
    return x


def mute(on: bool = True) -> None:
    """Drop the records that follow (e.g. the 60 repetitive decode steps) until ``mute(False)``, or until the
    enclosing :func:`stage` ends; :func:`record_always` still records. ``mute(False)`` inside a stage entered
    while muted keeps the outer mute. No-op when not tracing."""
    if _ACTIVE is not None:
        _ACTIVE.mute(on)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the pipeline stage of the records made inside; at its end the stage and the muting before it
    return. On a function, ``@trace.stage("thinker")``: every call is in that stage (one line to delete);
    ``with trace.stage(...)`` also works (tests). No-op when not tracing."""
    if _ACTIVE is None:
        yield
    else:
        with _ACTIVE.stage(name):
            yield


def format_shape(shape: Sequence[int]) -> str:
    """``(1, 6, 5,000)``; a 1-D shape keeps Python's trailing comma: ``(5,000,)``."""
    return "(" + ", ".join(f"{s:,}" for s in shape) + ("," if len(shape) == 1 else "") + ")"


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
