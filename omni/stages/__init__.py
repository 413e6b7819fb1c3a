"""The training stages, in the order they are trained: the one registry every consumer reads.

    omni/stages/<stage>.py    the stage, top to bottom: preset → data → tokenizer → model → fit → export;
                              ``main(argv)`` is what ``omni train <stage>`` and ``python train/<stage>.py`` run.
                              Every ``main`` has one skeleton (omni/training/stage.py): ``start`` (preset, command
                              line, run directory, seeds, device), the stage's own data, model and loss, then
                              ``train_and_export`` (fit, the files the export ships, the report line)

:data:`STAGES` maps each name to a :class:`Stage`: what its export folder holds (the class it exports and that
class's config, whether it carries the shared tokenizer and which config field its pieces must fit: the stage's
entry in :data:`omni.exports.EXPORTS`, which inference and evaluation load through), the held-out evaluation
(``omni eval``), the training entry point (``omni train``) and the script users run. ``omni train``,
``omni eval``, ``omni chat``/``asr``/``tts``, the demo and the GPU check all read it; nothing imports a stage
by its name as a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from omni.evaluation import audio as audio_eval
from omni.evaluation import codec as codec_eval
from omni.evaluation import mufun as mufun_eval
from omni.evaluation import omni_sft as omni_sft_eval
from omni.evaluation import talker as talker_eval
from omni.evaluation import thinker as thinker_eval
from omni.evaluation import vision as vision_eval
from omni.evaluation import vocoder as vocoder_eval
from omni.evaluation.metric import Metric
from omni.exports import EXPORTS, Export
from omni.stages import audio, codec, mufun, omni_sft, talker, thinker, vision, vocoder


@dataclass(frozen=True)
class Stage:
    name: str
    export: Export                           # what the export folder holds: model, config, tokenizer
    evaluate: Callable[..., list[Metric]]    # evaluate(ckpt, data, split, device) -> list[Metric]
    train: Callable[[list[str] | None], int]  # main(argv) of omni/stages/<name>.py

    @property
    def script(self) -> str:
        """The entry point users run: ``train/<name>.py``."""
        return f"train/{self.name}.py"

STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("thinker", EXPORTS["thinker"], thinker_eval.evaluate, thinker.main),
    Stage("audio", EXPORTS["audio"], audio_eval.evaluate, audio.main),
    Stage("vision", EXPORTS["vision"], vision_eval.evaluate, vision.main),
    Stage("codec", EXPORTS["codec"], codec_eval.evaluate, codec.main),
    Stage("vocoder", EXPORTS["vocoder"], vocoder_eval.evaluate, vocoder.main),
    Stage("talker", EXPORTS["talker"], talker_eval.evaluate, talker.main),
    Stage("omni_sft", EXPORTS["omni_sft"], omni_sft_eval.evaluate, omni_sft.main),
    Stage("mufun", EXPORTS["mufun"], mufun_eval.evaluate, mufun.main),
)}


def stage(name: str) -> Stage:
    """``STAGES[name]``, or a ValueError listing the stages."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return STAGES[name]
