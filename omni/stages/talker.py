"""Stage 5 — Talker: text-conditioned TalkerTiny on the RVQ codes of the world's TTS clips.

    python train/talker.py --config train/configs/talker/smoke.json --data data/small
                           [--codec checkpoints/codec/export] [--tokenizer tok.model] [--out runs/x]
                           [--device cpu|cuda|mps] [--precision fp32|bf16|fp16] [--max-steps N]
    omni train talker --config train/configs/talker/cpu.json --tokenizer checkpoints/thinker/export/tokenizer.model

Each TTS clip becomes a pair: the ids of its sentence (the shared BPE
tokenizer, no BOS, as ``omni.pipelines.tts.speak`` encodes) and the codes of
its speech mel under the trained codec (``--codec``, default
``checkpoints/codec/export``; an error if it is not there). A training step is
Part 6's, with the text prefix and the stop head added (``talker_loss``):

    codes (B, T, 2) ──shift right, frame 0 zeroed──▶ TalkerTiny(text (B, N), ·) ──▶ base / residual logits
        (B, T, 128) each: CE on both codebooks + stop BCE (target 1 at each clip's last frame)

Batches are padded: text on the left (masked), frames on the right (ignored
by the loss). Validation: teacher-forced loss and code accuracy on the
``data.val_split`` clips. The run ends with ``export/`` (config.json =
TalkerConfig, model.safetensors, tokenizer.model, and codec.sha256 naming the
codec whose codes it speaks).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path



from omni.audio.speech_mel import SpeechMelConfig
from omni.evaluation.talker import teacher_forced
from omni.models.rvq import RVQ, CodecConfig
from omni.models.talker import TalkerConfig, TalkerTiny, talker_loss
from omni.pipelines.tts import check_parts
from omni.training import ShuffledBatches, load_exported
from omni.training.speech import (CODEC_FINGERPRINT, clip_mels, codec_fingerprint, pad_talker_batch,
                                  split_records, talker_items)
from omni.checkpoint import export_dir
from omni.training.stage import shared_tokenizer, stage_parser, start, train_and_export


@dataclass
class TalkerDataConfig:
    world: str = "data/small"       # synthetic-world folder; --data overrides
    val_split: str = "val"          # TTS clips for teacher-forced validation
    eval_batch_size: int = 16


def parse_args(argv=None) -> argparse.Namespace:
    p = stage_parser("talker", __doc__, data_help="synthetic-world folder (overrides data.world)")
    p.add_argument("--codec", default=str(export_dir("codec")), help="exported codec (train/codec.py's export/)")
    p.add_argument("--tokenizer", default=None, help="the shared SentencePiece .model (default: the run's, "
                                                     "else trained on the world's tokenizer_corpus.txt)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    run = start("talker", args, TalkerConfig, TalkerDataConfig)        # preset + command line; seeds, device
    model_cfg, data_cfg, cfg, ctx, run_dir = run
    world = Path(args.data or data_cfg.world)

    # =========================================================================
    # 1. The codec whose codes the Talker learns to speak
    # =========================================================================
    codec_dir = Path(args.codec)
    if not (codec_dir / "config.json").is_file():
        raise FileNotFoundError(f"no codec at {codec_dir} (config.json missing): train it first "
                                f"(omni train codec --config train/configs/codec/<preset>.json) or pass --codec DIR")
    rvq = load_exported(codec_dir, RVQ, CodecConfig).eval()
    mel_cfg = SpeechMelConfig()
    check_parts(model_cfg, rvq.cfg, mel_cfg)
    fingerprint = codec_fingerprint(codec_dir)
    if ctx.dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        recorded = run_dir / CODEC_FINGERPRINT                 # a resumed run must speak the same codes
        if recorded.exists() and recorded.read_text().split()[0] != fingerprint:
            raise ValueError(f"{run_dir} was trained on codec {recorded.read_text().split()[0][:12]}…, but "
                             f"{codec_dir} holds {fingerprint[:12]}…: use a new --out for a new codec")
        recorded.write_text(f"{fingerprint}  {codec_dir}\n")
    ctx.say(f"[codec] {codec_dir}: {rvq.cfg.n_codebooks} × {rvq.cfg.codebook_size} codes per frame")

    # =========================================================================
    # 2. Tokenizer: the one the whole stack shares
    # =========================================================================
    tok = shared_tokenizer(run, world, args.tokenizer, model_cfg.text_vocab_size)

    # =========================================================================
    # 3. Pairs (text ids, codes) for the train and validation clips; padded batches
    # =========================================================================
    def pairs(split: str) -> list[dict]:
        records = split_records(world, ["tts"], split, ctx.say)
        return talker_items(records, clip_mels(records, mel_cfg), rvq, tok, model_cfg.max_text_tokens,
                            model_cfg.max_frames)

    train_items, val_items = pairs("train"), pairs(data_cfg.val_split)
    data = ShuffledBatches(train_items, cfg.batch_size, cfg.seed, rank=ctx.dist.rank,
                           world_size=ctx.dist.world_size, collate_fn=pad_talker_batch)
    frames = sum(it["codes"].shape[0] for it in train_items)
    ctx.say(f"[data] {len(train_items)} training clips ({frames:,} frames, {frames / mel_cfg.frame_rate / 60:.1f} min),"
            f" {len(val_items)} {data_cfg.val_split} clips; batches of {cfg.batch_size}")

    # =========================================================================
    # 4. Model, loss (Part 6 + stop), evaluation (teacher-forced loss and code accuracy)
    # =========================================================================
    model = TalkerTiny(model_cfg)

    def loss_fn(m, batch):
        loss, metrics = talker_loss(m, batch["text"], batch["codes"], batch["lengths"], batch["text_pad"])
        return loss, {**metrics, "samples": batch["codes"].shape[0]}

    def evaluate(m) -> dict:
        return teacher_forced(m, val_items, data_cfg.eval_batch_size)

    def report(result) -> str:
        e = result.last_eval
        return (f"[talker] {data_cfg.val_split}: loss {e['val_loss']:.3f}, code accuracy base "
                f"{100 * e['acc_base']:.1f} % residual {100 * e['acc_residual']:.1f} %, stop "
                f"{100 * e['acc_stop']:.1f} %")

    # =========================================================================
    # 5. Train (omni.training.fit), ship the tokenizer and the codec's fingerprint with the exported weights
    # =========================================================================
    return train_and_export(run, model, loss_fn, data, evaluate, report=report,
                            ship=[run_dir / "tokenizer.model", run_dir / CODEC_FINGERPRINT])
