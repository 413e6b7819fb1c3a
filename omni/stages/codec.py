"""Stage 4 — Codec: the RVQ mel autoencoder on the speech mels of the world's TTS and ASR clips.

    python train/codec.py --config train/configs/codec/smoke.json --data data/small [--out runs/x]
                          [--device cpu|cuda|mps] [--precision fp32|bf16|fp16] [--max-steps N]
    omni train codec --config train/configs/codec/cpu.json

With the seed's identity codec (``model.encoder: "identity"``), every 80 ms
speech-mel frame (128 log-mel bins, :mod:`omni.audio.speech_mel`) is one
training sample: that RVQ has no temporal context, so batches are shuffled
frames. The conv codec (``"conv"``) sees neighbouring frames, so its samples
are windows of ``data.segment_frames`` consecutive frames of one clip, one every
``data.segment_stride`` frames (clips shorter than a window are left out, and
counted). Training, per the RVQ's API (:mod:`omni.models.rvq`):

1. **Initialisation from data** before the first step: k-means on a seeded
   sample of the training frames (``data.kmeans_iters: 0`` = plain samples),
   codebook 1 on what codebook 0 leaves; for the conv codec, on the encoder's
   outputs of the training clips (which, untrained, are the frames themselves). It is deterministic (its own seeded
   generator) and the codebooks are model weights, so every checkpoint holds
   them; a resumed run skips it and loads them.
2. **Steps**: ``RVQ.loss`` — the VQ-VAE codebook term plus β · commitment with
   straight-through gradients, plus the mel reconstruction for the conv codec — optimised by the shared loop's AdamW
   (``train.weight_decay`` 0: decay would pull mel-space codebooks towards 0).
3. **Dead codes** every ``data.reseed_every`` steps: entries chosen fewer than
   ``data.min_count`` times in a fixed seeded pool of training frames (windows,
   for the conv codec) move onto random residuals of that pool. The decision depends only on the weights and
   the step, so a resumed run re-seeds exactly as an uninterrupted one.

Logged per step: loss, mel L1, SNR dB, ``usage_k`` and ``perplexity_k`` of each
codebook on the batch; per evaluation the same on every validation frame.
The run ends with ``export/`` (config.json = CodecConfig, model.safetensors).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


import torch

from omni.audio.speech_mel import SpeechMelConfig
from omni.evaluation.codec import codec_metrics, split_clips
from omni.models.rvq import RVQ, CodecConfig, code_counts, kmeans_init, reseed_dead_codes
from omni.training import ShuffledBatches
from omni.training.stage import stage_parser, start, train_and_export


@dataclass
class CodecDataConfig:
    world: str = "data/small"            # synthetic-world folder; --data overrides
    tasks: tuple[str, ...] = ("tts", "asr")   # whose clips' frames to learn
    val_split: str = "val"
    kmeans_frames: int = 20_000          # training frames k-means sees (a seeded sample)
    kmeans_iters: int = 10               # Lloyd iterations; 0 = initialise with sampled frames only
    reseed_every: int = 100              # optimizer steps between dead-code re-seeding; 0 = never
    reseed_pool: int = 8192              # training frames (a fixed seeded sample) that judge which codes are dead
    min_count: int = 1                   # an entry chosen fewer times than this in the pool is dead
    segment_frames: int = 12             # conv codec: frames per training window (batch_size counts windows)
    segment_stride: int = 4              # conv codec: frames between the starts of a clip's windows

    def __post_init__(self):
        self.tasks = tuple(self.tasks)   # JSON gives a list
        for name in ("kmeans_frames", "reseed_pool", "min_count", "segment_frames", "segment_stride"):
            assert getattr(self, name) >= 1, f"CodecDataConfig.{name} must be ≥ 1, got {getattr(self, name)}"
        assert self.kmeans_iters >= 0 and self.reseed_every >= 0, \
            f"kmeans_iters and reseed_every must be ≥ 0, got {self.kmeans_iters}, {self.reseed_every}"


class FrameBatches:
    """Shuffled frame batches that also carry their micro-batch number.

    The number comes from the resumable position (epoch, index) of the
    :class:`ShuffledBatches` inside, so re-seeding on "every n-th step" needs
    no state of its own and resumes exactly.
    """

    def __init__(self, frames: torch.Tensor, batch_size: int, seed: int, rank: int, world_size: int):
        self.inner = ShuffledBatches(frames, batch_size, seed, rank=rank, world_size=world_size)

    def next_batch(self) -> dict:
        served = self.inner.epoch * self.inner.batches_per_epoch + self.inner.index
        return {"mel": self.inner.next_batch(), "micro_step": served}             # mel (B, D) or (B, L, D)

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)


def seeded_sample(frames: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """min(n, M) distinct rows of frames (M, ...), chosen by ``seed`` alone."""
    g = torch.Generator().manual_seed(seed)
    return frames[torch.randperm(frames.shape[0], generator=g)[:n]]


def clip_windows(clips: list[torch.Tensor], length: int, stride: int) -> tuple[torch.Tensor, int]:
    """Windows of ``length`` consecutive frames of one clip each, starting every ``stride`` frames
    → (S, length, D), and how many clips were shorter than one window (left out)."""
    windows = [c[i:i + length] for c in clips for i in range(0, c.shape[0] - length + 1, stride)]
    short = sum(c.shape[0] < length for c in clips)
    if not windows:
        raise ValueError(f"no clip has segment_frames={length} frames; lower data.segment_frames")
    return torch.stack(windows), short


def parse_args(argv=None) -> argparse.Namespace:
    p = stage_parser("codec", __doc__, data_help="synthetic-world folder (overrides data.world)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    run = start("codec", args, CodecConfig, CodecDataConfig)           # preset + command line; seeds, device
    model_cfg, data_cfg, cfg, ctx, run_dir = run
    mel_cfg = SpeechMelConfig()
    if model_cfg.dim != mel_cfg.n_mels:
        raise ValueError(f"{args.config} [model] dim={model_cfg.dim}, but the speech mel has "
                         f"n_mels={mel_cfg.n_mels}: the codebooks live in mel space")
    world = Path(args.data or data_cfg.world)

    # =========================================================================
    # 1. Frames: every speech-mel frame of the world's train / validation clips
    #    (the identity codec: single frames; the conv codec: windows of consecutive frames)
    # =========================================================================
    train_clips = split_clips(world, "train", data_cfg.tasks, mel_cfg, say=ctx.say)         # [(T_i, 128)]
    val_clips = split_clips(world, data_cfg.val_split, data_cfg.tasks, mel_cfg, say=ctx.say)
    train_frames = torch.cat(train_clips)                                                  # (M, 128)
    n_val = sum(c.shape[0] for c in val_clips)
    ctx.say(f"[data] {train_frames.shape[0]:,} training frames ({train_frames.shape[0] / mel_cfg.frame_rate / 60:.1f}"
            f" min), {n_val:,} {data_cfg.val_split} frames")
    conv = model_cfg.encoder == "conv"
    if conv:
        L = data_cfg.segment_frames
        samples, short = clip_windows(train_clips, L, data_cfg.segment_stride)              # (S, L, 128)
        pool = seeded_sample(samples, max(1, data_cfg.reseed_pool // L), cfg.seed + 2)      # (P, L, 128)
        ctx.say(f"[data] {samples.shape[0]:,} windows of {L} frames every {data_cfg.segment_stride} "
                f"({short} clips shorter than a window left out); batches of {cfg.batch_size} windows")
    else:
        samples = train_frames
        pool = seeded_sample(train_frames, data_cfg.reseed_pool, cfg.seed + 2)[None]       # (1, P, 128)
        ctx.say(f"[data] batches of {cfg.batch_size} frames")
    data = FrameBatches(samples, cfg.batch_size, cfg.seed, rank=ctx.dist.rank, world_size=ctx.dist.world_size)

    # =========================================================================
    # 2. Model: codebooks initialised from data (skipped on resume: the checkpoint holds them)
    # =========================================================================
    model = RVQ(model_cfg)
    if (run_dir / "checkpoints" / "latest.pt").exists():
        ctx.say("[init] resuming: the codebooks come from the checkpoint")
    else:
        with torch.no_grad():                                          # the encoder's outputs, clip by clip
            latents = torch.cat([model.latents(c[None])[0] for c in train_clips]) if conv else train_frames
        sample = seeded_sample(latents, data_cfg.kmeans_frames, cfg.seed + 1)
        kmeans_init(model, sample, n_iter=data_cfg.kmeans_iters,
                    generator=torch.Generator().manual_seed(cfg.seed + 1))
        m = codec_metrics(model, val_clips)
        how = f"k-means ({data_cfg.kmeans_iters} iterations)" if data_cfg.kmeans_iters else "sampled frames"
        ctx.say(f"[init] {how} on {sample.shape[0]:,} frames: {data_cfg.val_split} mel L1 {m['mel_l1']:.3f}, "
                f"SNR {m['snr_db']:.2f} dB, perplexity " + " / ".join(
                    f"{m[f'perplexity_{k}']:.1f}" for k in range(model_cfg.n_codebooks)))

    # =========================================================================
    # 3. Loss (with dead-code re-seeding on schedule) and evaluation
    # =========================================================================
    every_micro = data_cfg.reseed_every * cfg.grad_accum_steps      # micro-batches between re-seedings

    def loss_fn(m, batch):
        n = batch["micro_step"]
        if every_micro and n > 0 and n % every_micro == 0:
            step = n // cfg.grad_accum_steps
            pool_d = pool.to(model.codebooks.device)
            with torch.no_grad():
                counts = code_counts(model.encode(pool_d), model_cfg.codebook_size)         # (K, N)
                latents = model.latents(pool_d)                                             # what the RVQ sees
            moved = reseed_dead_codes(model, latents, counts, data_cfg.min_count,
                                      generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + step))
            ctx.say(f"[codec] step {step + 1}: re-seeded {moved} dead entries (per codebook)")
        mel = batch["mel"] if conv else batch["mel"][None]      # (B, L, D) windows, or (1, B, D): frames as one row
        loss, metrics = m.loss(mel)
        return loss, {**metrics, "samples": batch["mel"].shape[0]}

    def evaluate(m) -> dict:
        return {f"val_{k}" if k in ("loss", "mel_l1", "snr_db") else k: v
                for k, v in codec_metrics(m, val_clips).items()}

    def report(result) -> str:
        e = result.last_eval
        return (f"[codec] {data_cfg.val_split}: mel L1 {e['val_mel_l1']:.3f}, SNR {e['val_snr_db']:.2f} dB, "
                + ", ".join(f"codebook {k} usage {100 * e[f'usage_{k}']:.0f} % perplexity "
                            f"{e[f'perplexity_{k}']:.1f}" for k in range(model_cfg.n_codebooks)))

    # =========================================================================
    # 4. Train (omni.training.fit), report
    # =========================================================================
    return train_and_export(run, model, loss_fn, data, evaluate, report=report)
