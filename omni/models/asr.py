"""ASRModel: AudioEncoderTiny + a CTC head over the 98-symbol character vocabulary (stage 2).

    mel (B, T, 128), mel_lengths (B,) ──AudioEncoderTiny──▶ (B, T', 192)    T' = output_length(T) ≈ T / 4
        ──ctc_head: Linear(192 → 98)──▶ logits (B, T', 98) ──log_softmax (fp32)──▶ log_probs (B, T', 98)

    option ``ctc_upsample: k`` (the seed: 1): ctc_head Linear(192 → k·98), each encoder frame read as k
    CTC frames: logits (B, T', k·98) ──reshape──▶ (B, k·T', 98), out_lengths k · T'

CTC (Connectionist Temporal Classification) lets the encoder emit one label
per 40 ms frame without knowing where each character starts: a transcript is
any frame sequence that collapses to it after merging repeats and dropping
the blank (id 0). Training uses ``torch.nn.functional.ctc_loss`` on these
log-probabilities with ``out_lengths`` as the input lengths; decoding here is
greedy: the arg-max label per frame, collapsed by :meth:`CharVocab.ctc_collapse`.

At 25 frames a second CTC is tight for characters: the world speaks up to
~17 characters a second, and every doubled letter needs a blank between its
two labels, so a fast clip leaves the model barely one frame per label and
almost no room for the blank CTC prefers to emit between them.
``ctc_upsample = 2`` gives the head 50 label slots a second from the same
encoder frames (the encoder's shapes, and what the omni model sees through
``proj_a``, stay the seed's).

The encoder is the same :class:`AudioEncoderTiny` the omni model uses, so the
ASR stage pre-trains the audio tower: ``model.encoder.state_dict()`` fits
``OmniModel.audio`` when the configs agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn

from omni import trace
from omni.models.audio_encoder import AudioEncoderConfig, AudioEncoderTiny, output_length
from omni.models.sound_head import SoundAttributeHead
from omni.nn import check_finite
from omni.tokenizer import CharVocab


@dataclass
class ASRConfig:
    encoder: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    vocab_size: int = 98            # CharVocab: blank (id 0) + 97 characters
    sound_classes: list[int] | None = None   # classes per sound attribute (SOUND_ATTRIBUTES): adds sound_head
    ctc_upsample: int = 1           # CTC frames per encoder frame (1: the seed's 25 a second; 2: 50)

    def __post_init__(self):
        if isinstance(self.encoder, dict):          # from config.json / a preset: Config(**d) rejects unknown keys
            self.encoder = AudioEncoderConfig(**self.encoder)
        if self.vocab_size != len(CharVocab()):
            raise ValueError(f"ASRConfig.vocab_size must equal the CTC character vocabulary "
                             f"({len(CharVocab())} symbols), got {self.vocab_size}")
        if not (isinstance(self.ctc_upsample, int) and 1 <= self.ctc_upsample <= 4):
            raise ValueError(f"ASRConfig.ctc_upsample must be an integer in [1, 4], got {self.ctc_upsample!r}")


class ASRModel(nn.Module):
    def __init__(self, cfg: ASRConfig):
        super().__init__()
        self.cfg = cfg
        self.vocab = CharVocab()
        self.encoder = AudioEncoderTiny(cfg.encoder)
        self.ctc_head = nn.Linear(cfg.encoder.d_model, cfg.ctc_upsample * cfg.vocab_size)
        self.sound_head = (SoundAttributeHead(cfg.encoder.d_model, tuple(cfg.sound_classes))
                           if cfg.sound_classes else None)

    def output_lengths(self, mel_lengths: torch.Tensor) -> torch.Tensor:
        """CTC frames per clip: ctc_upsample · ⌈⌈n / 2⌉ / 2⌉ of each clip's mel frames."""
        return self.cfg.ctc_upsample * output_length(mel_lengths)

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """mel (B, T, 128), mel_lengths (B,) or None (every clip T frames)
        → (log_probs (B, T', 98) float32, out_lengths (B,) int64)."""
        B, T = mel.shape[:2]
        if mel_lengths is None:
            mel_lengths = torch.full((B,), T, dtype=torch.long, device=mel.device)
        x = self.encoder(mel, mel_lengths)                                            # (B, T', 192)
        logits = self.ctc_head(x)                                                     # (B, T', k·98)
        k = self.cfg.ctc_upsample
        if k > 1:   # each encoder frame's k·98 logits are k consecutive CTC frames of 98
            logits = rearrange(logits, "b t (k v) -> b (t k) v", k=k)                 # (B, k·T', 98)
        trace.record("asr.logits", logits, f"CTC logits per {40 // k} ms frame")
        log_probs = logits.float().log_softmax(dim=-1)                                # (B, k·T', 98), fp32 for CTC
        if self.cfg.encoder.check_finite:
            check_finite(log_probs, "ASRModel CTC log-probabilities")
        return log_probs, self.output_lengths(mel_lengths.to(mel.device))

    def sound_logits(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
        """mel (B, T, 128), mel_lengths (B,) of sound clips → attribute logits (B, Σ classes) (needs sound_classes)."""
        if self.sound_head is None:
            raise ValueError("this ASRModel has no sound head: set model.sound_classes (the audio stage's "
                             "data.sound_weight needs it)")
        x = self.encoder(mel, mel_lengths)                                            # (B, T', 192)
        return self.sound_head(x, output_length(mel_lengths.to(mel.device)))          # (B, Σ classes)

    @torch.no_grad()
    def transcribe(self, mel: torch.Tensor, mel_lengths: torch.Tensor | None = None) -> list[str]:
        """Greedy CTC decoding: arg-max label per frame, repeats merged, blanks (id 0) dropped."""
        log_probs, lengths = self(mel, mel_lengths)
        best = log_probs.argmax(dim=-1)                                               # (B, T')
        return [self.vocab.ctc_collapse(best[i, : int(lengths[i])].tolist()) for i in range(best.shape[0])]

