"""Stage 4b — Vocoder: VocosTiny, the learned vocoder from the speech mel to the waveform, on the world's speech.

    python train/vocoder.py --config train/configs/vocoder/smoke.json --data data/small [--out runs/x]
                            [--device cpu|cuda|mps] [--precision fp32|bf16|fp16] [--max-steps N]
    omni train vocoder --preset cpu

Every training clip of the world's TTS and ASR manifests (all voices) is cut into
segments of ``data.segment_frames`` mel frames with their samples::

    wave (S,) ──zero-pad to a whole number of segments──▶ (n·L·1280,) ──speech_mel──▶ (n·L, 128)
        ──cut──▶ n pairs: mel (L, 128), wave (L × 1280,)

The mel of each segment is computed on the whole (padded) clip, as at inference, so a
segment's edge frames carry the same context they would there; padding with zeros is
silence, so the padded frames are what the speech mel makes of silence. A step:
``VocosTiny(mel (B, L, 128))`` → wave (B, L × 1280) against the true samples with
:func:`~omni.models.vocoder.vocoder_loss` (multi-resolution STFT + the ASR mel's L1).
Validation: the same loss on the first ``data.val_segments`` segments of ``data.val_split``.
The run ends with ``export/`` (config.json = VocosConfig, model.safetensors); ``omni tts``
uses ``checkpoints/vocoder/export`` when it is there.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from omni.audio.io import load_audio
from omni.audio.speech_mel import SpeechMelConfig, num_samples, speech_mel
from omni.models.vocoder import VocosConfig, VocosTiny, vocoder_loss
from omni.training import ShuffledBatches
from omni.training.speech import SPEECH_TASKS, split_records
from omni.training.stage import stage_parser, start, train_and_export


@dataclass
class VocoderDataConfig:
    world: str = "data/small"            # synthetic-world folder; --data overrides
    tasks: tuple[str, ...] = SPEECH_TASKS   # whose clips to learn from: TTS (one voice) and ASR (all voices)
    segment_frames: int = 16             # L: mel frames per training segment (16 × 80 ms = 1.28 s)
    max_clips: int = 0                   # per task and split, the first N clips (0 = all): bounds loading time
    val_split: str = "val"
    val_segments: int = 64               # validation segments (the first ones of val_split)
    mel_weight: float = 1.0              # weight of the ASR-mel L1 in vocoder_loss

    def __post_init__(self):
        self.tasks = tuple(self.tasks)   # JSON gives a list
        assert self.segment_frames >= 1 and self.val_segments >= 1 and self.max_clips >= 0, \
            f"segment_frames and val_segments must be ≥ 1, max_clips ≥ 0: {self}"


def clip_segments(world: Path, split: str, data_cfg: VocoderDataConfig, mel_cfg: SpeechMelConfig,
                  say=print) -> dict[str, torch.Tensor]:
    """The split's clips as segments: {"mel": (M, L, n_mels), "wave": (M, L × hop)}."""
    records = []
    for task in data_cfg.tasks:
        records += split_records(world, [task], split, say)[:data_cfg.max_clips or None]
    L, seg = data_cfg.segment_frames, num_samples(data_cfg.segment_frames, mel_cfg)
    mels, waves = [], []
    for r in records:
        wave = load_audio(r.audio, mel_cfg.sample_rate)                              # (S,)
        wave = F.pad(wave, (0, -wave.shape[0] % seg))                                # (n · L · hop,)
        mel = speech_mel(wave, mel_cfg)                                              # (n · L, n_mels)
        mels.append(mel.view(-1, L, mel_cfg.n_mels))                                 # (n, L, n_mels)
        waves.append(wave.view(-1, seg))                                             # (n, L · hop)
    return {"mel": torch.cat(mels), "wave": torch.cat(waves)}


class Segments(torch.utils.data.Dataset):
    def __init__(self, segments: dict[str, torch.Tensor]):
        self.mel, self.wave = segments["mel"], segments["wave"]

    def __len__(self) -> int:
        return self.mel.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"mel": self.mel[i], "wave": self.wave[i]}


def parse_args(argv=None) -> argparse.Namespace:
    p = stage_parser("vocoder", __doc__, data_help="synthetic-world folder (overrides data.world)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    run = start("vocoder", args, VocosConfig, VocoderDataConfig)       # preset + command line; seeds, device
    model_cfg, data_cfg, cfg, ctx, run_dir = run
    mel_cfg = SpeechMelConfig()
    if (model_cfg.n_mels, model_cfg.hop_length) != (mel_cfg.n_mels, mel_cfg.hop_length):
        raise ValueError(f"{args.config} [model] n_mels={model_cfg.n_mels}, hop_length={model_cfg.hop_length}, "
                         f"but the speech mel has n_mels={mel_cfg.n_mels}, hop_length={mel_cfg.hop_length}")
    world = Path(args.data or data_cfg.world)

    # =========================================================================
    # 1. Data: (mel, wave) segments of every training clip, all voices
    # =========================================================================
    train = clip_segments(world, "train", data_cfg, mel_cfg, say=ctx.say)
    val = clip_segments(world, data_cfg.val_split, data_cfg, mel_cfg, say=ctx.say)
    val = {k: v[:data_cfg.val_segments] for k, v in val.items()}
    data = ShuffledBatches(Segments(train), cfg.batch_size, cfg.seed, rank=ctx.dist.rank,
                           world_size=ctx.dist.world_size)
    seconds = train["wave"].numel() / mel_cfg.sample_rate
    ctx.say(f"[data] {train['mel'].shape[0]:,} training segments of {data_cfg.segment_frames} frames "
            f"({seconds / 60:.1f} min, silence padding included), {val['mel'].shape[0]} {data_cfg.val_split} "
            f"segments; batches of {cfg.batch_size}")

    # =========================================================================
    # 2. Model
    # =========================================================================
    model = VocosTiny(model_cfg)
    ctx.say(f"[model] VocosTiny: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
            f"{model_cfg.n_layers} blocks at {mel_cfg.frame_rate:g} Hz + {model_cfg.n_up_layers} at "
            f"{mel_cfg.frame_rate * model_cfg.upsample:g} Hz, iSTFT n_fft {model_cfg.n_fft} hop {model_cfg.sub_hop}")

    # =========================================================================
    # 3. Loss and evaluation
    # =========================================================================
    def loss_fn(m, batch):
        pred = m(batch["mel"])                                                    # (B, L × hop)
        loss, metrics = vocoder_loss(pred, batch["wave"], data_cfg.mel_weight)
        return loss, {**metrics, "samples": pred.shape[0]}

    @torch.no_grad()
    def evaluate(m) -> dict:
        device = next(m.parameters()).device
        sums, n = {}, 0
        for i in range(0, val["mel"].shape[0], cfg.batch_size):
            mel, wave = val["mel"][i:i + cfg.batch_size].to(device), val["wave"][i:i + cfg.batch_size].to(device)
            loss, metrics = vocoder_loss(m(mel), wave, data_cfg.mel_weight)
            for k, v in {"loss": float(loss), **metrics}.items():
                sums[k] = sums.get(k, 0.0) + v * mel.shape[0]
            n += mel.shape[0]
        return {f"val_{k}": v / n for k, v in sums.items()}

    def report(result) -> str:
        e = result.last_eval
        return (f"[vocoder] {data_cfg.val_split}: loss {e['val_loss']:.3f}, spectral convergence "
                f"{e['val_spectral_convergence']:.3f}, ln|S| L1 {e['val_log_mag_l1']:.3f}, "
                f"ASR-mel L1 {e['val_asr_mel_l1']:.3f}")

    # =========================================================================
    # 4. Train (omni.training.fit), report
    # =========================================================================
    return train_and_export(run, model, loss_fn, data, evaluate, report=report)
