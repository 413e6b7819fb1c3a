"""``omni trace <pipeline>``: each pipeline's dry run, by the name the command line and the docs use.

Each function builds its models on random weights (or, for MuFun, on the ``meta`` device), runs one
example through them under a :class:`omni.trace.Tracer` and returns it; ``omni trace`` prints its table
and ``omni docs build`` writes one page per pipeline from it.
"""

from __future__ import annotations

from typing import Callable

from omni import trace
from omni.dry_run.audio import trace_audio
from omni.dry_run.image import trace_image
from omni.dry_run.multimodal import trace_multimodal
from omni.dry_run.mufun import trace_mufun
from omni.dry_run.text import trace_text
from omni.dry_run.tts import trace_talker_train, trace_tts

# name → function returning an omni.trace.Tracer; each takes **kwargs from the command line.
TRACE_PIPELINES: dict[str, Callable[..., trace.Tracer]] = {
    "text": trace_text,
    "image": trace_image,
    "audio": trace_audio,
    "multimodal": trace_multimodal,
    "mufun": trace_mufun,
    "tts": trace_tts,
    "talker-train": trace_talker_train,
}
