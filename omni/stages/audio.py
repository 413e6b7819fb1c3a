"""Stage 2 — Audio: AudioEncoderTiny + a CTC head trained as a character-level speech recogniser.

    python train/audio.py --config train/configs/audio/smoke.json --data data/small [--out runs/x]
                          [--device cpu|cuda|mps] [--precision fp32|bf16|fp16] [--max-steps N]
    omni train audio --config train/configs/audio/cpu.json
    torchrun --nproc_per_node 2 train/audio.py --config train/configs/audio/gpu.json

``--data`` is a synthetic-world folder (``omni data synth``) or any folder with
``asr_train.jsonl`` and ``asr_val.jsonl`` in the manifest format of
docs/data.md. Clips too short for their transcript under CTC, unreadable files
and transcripts outside the 98-symbol vocabulary are removed and counted by
reason (``omni.data.quality``); above ``data.bad_data_threshold`` the run stops.
The run directory ends with ``export/`` (ASRModel: config.json +
model.safetensors). Validation reports ``val_cer`` (character error rate after
the text normaliser of ``omni.cer``). Rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path


from omni.models.asr import ASRConfig, ASRModel
from omni.training import ShuffledBatches
from omni.training.ctc import SpecAugment, SpeechClips, collate_speech, ctc_loss, speech_cer
from omni.training.data import PairedBatches
from omni.training.sounds import SOUND_CLASSES, SoundClips, collate_sounds, sound_accuracy, sound_loss
from omni.training.stage import checked_records, stage_parser, start, train_and_export
from omni.data.music import SOUND_ATTRIBUTES


@dataclass
class AudioDataConfig:
    world: str = "data/medium"               # world folder with asr_{train,val}.jsonl; --data overrides
    bad_data_threshold: float = 0.01         # stop when more than this fraction of clips is bad
    val_clips: int = 200                     # validation clips scored at each evaluation (the first N)
    eval_batch_size: int = 16
    spec_augment: SpecAugment | None = field(default_factory=SpecAugment)   # null: no masking
    speed_perturb: list[float] | None = None  # training clips played at one of these speeds, e.g. [0.9, 1.0, 1.1]
    bucket_by_length: bool = False           # batches of clips of nearly one duration (omni.training.data)
    sound_weight: float = 0.0                # weight of the sound-attribute loss on the music clips (needs model.sound_classes)
    sound_batch_size: int = 16               # music clips per step beside the speech batch
    val_sounds: int = 200                    # validation music clips scored at each evaluation

    def __post_init__(self):
        if isinstance(self.spec_augment, dict):
            self.spec_augment = SpecAugment(**self.spec_augment)
        assert 0 <= self.bad_data_threshold < 1, f"bad_data_threshold must be in [0, 1), got {self.bad_data_threshold}"
        assert self.val_clips >= 1, f"val_clips must be ≥ 1, got {self.val_clips}"
        assert self.sound_weight >= 0, f"sound_weight must be ≥ 0, got {self.sound_weight}"


def clip_durations(manifest: Path, records) -> list[float]:
    """Seconds of each clip, for length buckets: the manifest's ``duration`` field, which all need."""
    missing = [r.id for r in records if not r.duration]
    if missing:
        raise ValueError(f"{manifest}: data.bucket_by_length needs a duration for every clip; "
                         f"{len(missing)} have none (first: {missing[0]})")
    return [r.duration for r in records]


def parse_args(argv=None) -> argparse.Namespace:
    p = stage_parser("audio", __doc__, data_help="world folder (overrides data.world)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    run = start("audio", args, ASRConfig, AudioDataConfig)           # preset + command line; seeds, device
    model_cfg, data_cfg, cfg, ctx, run_dir = run

    # =========================================================================
    # 1. Clips: read the manifests, drop and COUNT bad clips (too short for CTC, unreadable, ...)
    # =========================================================================
    world = Path(args.data or data_cfg.world)
    train_records = checked_records(world, "asr_train.jsonl", "asr", ctx.say, data_cfg.bad_data_threshold)
    val_records = checked_records(world, "asr_val.jsonl", "asr", ctx.say, data_cfg.bad_data_threshold)
    val_records = val_records[: data_cfg.val_clips]
    hours = sum(r.duration or 0.0 for r in train_records) / 3600
    ctx.say(f"[data] {world}: {len(train_records):,} training clips ({hours:.2f} h), "
            f"{len(val_records):,} validation clips scored")

    # =========================================================================
    # 2. Batches: log-mel computed on access, padded per batch with lengths
    # =========================================================================
    train_clips, val_clips = SpeechClips(train_records, speeds=data_cfg.speed_perturb), SpeechClips(val_records)
    data = ShuffledBatches(train_clips, cfg.batch_size, cfg.seed, rank=ctx.dist.rank,
                           world_size=ctx.dist.world_size, collate_fn=collate_speech,
                           lengths=clip_durations(world / "asr_train.jsonl", train_records)
                           if data_cfg.bucket_by_length else None)
    sounds = data_cfg.sound_weight > 0
    if sounds and ctx.dist.world_size > 1:
        raise RuntimeError("data.sound_weight runs in one process: the sound head's loss calls "
                           "ASRModel.sound_logits, which DistributedDataParallel does not wrap")
    if sounds:   # a second stream: the world's music clips, labelled from their "describe the sound." answers
        if model_cfg.sound_classes != SOUND_CLASSES:
            raise ValueError(f"{args.config}: data.sound_weight needs model.sound_classes {SOUND_CLASSES} "
                             f"(classes of {', '.join(SOUND_ATTRIBUTES)}), got {model_cfg.sound_classes}")
        train_sounds, val_sounds = (SoundClips(checked_records(world, f"audio_qa_{split}.jsonl", "audio_qa", ctx.say,
                                                               data_cfg.bad_data_threshold))
                                    for split in ("train", "val"))
        val_sounds.records = val_sounds.records[: data_cfg.val_sounds]
        ctx.say(f"[data] sound head: {len(train_sounds):,} training music clips, {len(val_sounds):,} validation, "
                f"{data_cfg.sound_batch_size} per step beside the speech, loss weight {data_cfg.sound_weight}")
        data = PairedBatches(speech=data, sound=ShuffledBatches(
            train_sounds, data_cfg.sound_batch_size, cfg.seed, rank=ctx.dist.rank,
            world_size=ctx.dist.world_size, collate_fn=collate_sounds))

    # =========================================================================
    # 3. Model, loss (CTC, zero_infinity, SpecAugment-style masks), evaluation (CER)
    # =========================================================================
    model = ASRModel(model_cfg)
    augment = data_cfg.spec_augment

    def loss_fn(m, batch):
        if not sounds:
            return ctc_loss(m, batch, augment)
        loss, counts = ctc_loss(m, batch["speech"], augment)
        return loss + data_cfg.sound_weight * sound_loss(m, batch["sound"]), counts

    def evaluate(m) -> dict:
        out = speech_cer(m, val_clips, data_cfg.eval_batch_size)
        if sounds:
            out.update({f"val_sound_{k}_acc": v for k, v in sound_accuracy(m, val_sounds, data_cfg.eval_batch_size).items()})
        return out

    def report(result) -> str:
        return (f"[audio] validation: CER {100 * result.last_eval['val_cer']:.2f} %, "
                f"CTC loss {result.last_eval['val_loss']:.4f} nats per character; best {result.best}")

    # =========================================================================
    # 4. Train (omni.training.fit), report
    # =========================================================================
    return train_and_export(run, model, loss_fn, data, evaluate, report=report)
