"""The training stages, in the order they are trained: the one registry every consumer reads.

    omni/stages/<stage>.py    the stage, top to bottom: preset → data → tokenizer → model → fit → export;
                              ``main(argv)`` is what ``omni train <stage>`` and ``python train/<stage>.py`` run
    omni/stages/exports.py    a stage's export folder, loaded strictly for inference (``load_stage``)

:data:`STAGES` maps each name to a :class:`Stage`: the class it exports and that class's config, whether the
export carries the shared tokenizer (and which config field its pieces must fit), the held-out evaluation
(``omni eval``), the training entry point (``omni train``) and the script users run. ``omni train``,
``omni eval``, ``omni chat``/``asr``/``tts``, the demo and the GPU check all read it; nothing imports a stage
by its name as a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
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
from omni.models.asr import ASRConfig, ASRModel
from omni.models.contrastive import ContrastiveConfig, ContrastiveModel
from omni.models.omni_model import OmniConfig, OmniModel
from omni.models.rvq import RVQ, CodecConfig
from omni.models.talker import TalkerConfig, TalkerTiny
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.models.vocoder import VocosConfig, VocosTiny
from omni.mufun.config import MuFunConfig
from omni.mufun.model import MuFunModel
from omni.stages import audio, codec, mufun, omni_sft, talker, thinker, vision, vocoder
from omni.training.stage import export_dir


@dataclass(frozen=True)
class Stage:
    name: str
    model: type                              # the exported nn.Module, built as model(config)
    config: type                             # its config dataclass: config.json holds its fields
    tokenizer: bool                          # the export holds tokenizer.model (the stage reads text)
    vocab_field: str | None                  # dotted config field the tokenizer's pieces must fit
    evaluate: Callable[..., list[Metric]]    # evaluate(ckpt, data, split, device) -> list[Metric]
    train: Callable[[list[str] | None], int]  # main(argv) of omni/stages/<name>.py

    @property
    def script(self) -> str:
        """The entry point users run: ``train/<name>.py``."""
        return f"train/{self.name}.py"

    def export(self, root: str | Path = "checkpoints") -> Path:
        """Default export folder: ``<root>/<name>/export``."""
        return export_dir(self.name, root)


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("thinker", ThinkerLM, ThinkerConfig, True, "vocab_size", thinker_eval.evaluate, thinker.main),
    Stage("audio", ASRModel, ASRConfig, False, None, audio_eval.evaluate, audio.main),
    Stage("vision", ContrastiveModel, ContrastiveConfig, True, "text.vocab_size", vision_eval.evaluate, vision.main),
    Stage("codec", RVQ, CodecConfig, False, None, codec_eval.evaluate, codec.main),
    Stage("vocoder", VocosTiny, VocosConfig, False, None, vocoder_eval.evaluate, vocoder.main),
    Stage("talker", TalkerTiny, TalkerConfig, True, "text_vocab_size", talker_eval.evaluate, talker.main),
    Stage("omni_sft", OmniModel, OmniConfig, True, "thinker.vocab_size", omni_sft_eval.evaluate, omni_sft.main),
    Stage("mufun", MuFunModel, MuFunConfig, True, "qwen3.vocab_size", mufun_eval.evaluate, mufun.main),
)}


def stage(name: str) -> Stage:
    """``STAGES[name]``, or a ValueError listing the stages."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return STAGES[name]
