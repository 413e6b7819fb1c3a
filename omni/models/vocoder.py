"""VocosTiny: a learned vocoder from the 12.5 Hz speech mel to the 16 kHz waveform (beside Griffin-Lim).

A small Vocos (Siuzdak 2023): ConvNeXt blocks over the mel frames, then a head that
predicts an STFT — log magnitude and phase — which one inverse STFT turns into samples::

    mel (B, T, 128) ──Conv1d k7──▶ (B, T, C) ──ConvNeXt × n_layers (80 ms frames)──▶ (B, T, C)
        ──Linear C → U·C, split each frame into U──▶ (B, T·U, C) ──ConvNeXt × n_up_layers (20 ms)──▶ (B, T·U, C)
        ──Linear C → 2·(n_fft/2 + 1)──▶ log|S|, φ ──S = exp(log|S|)·e^{iφ}──▶ (B, T·U, 641) complex
        ──inverse STFT (n_fft 1280, hop 320)──▶ wave (B, T·U·320) = (B, T × 1280)

With the defaults U = 4: 301 frames → 1204 sub-frames → 385,280 samples, Part 5's arithmetic.

* **Why upsample before the head.** One 80 ms hop per STFT frame would need 320 ms windows
  (2561 bins of phase per frame, the speech mel's own framing); four 20 ms sub-frames per mel
  frame with 80 ms windows are the scale speech vocoders work at, and the head stays small.
* **Inverse STFT = the speech mel's framing** (:class:`~omni.audio.speech_mel.Framing`, pad
  (n_fft − hop)/2): sub-frame j is centred on samples [j·320, (j+1)·320), so the output is
  exactly T·U·320 samples and mel frame t's four sub-frames tile its 1280 samples.
* The head follows Vocos's ``ISTFTHead``: magnitude = exp(·) clipped at ``max_magnitude``,
  phase through cos/sin (so it needs no wrapping).
* :func:`vocoder_loss`: multi-resolution STFT loss (spectral convergence + log-magnitude L1 at
  three resolutions) plus an L1 on the log of the ASR's own mel front end
  (:func:`omni.audio.tiny_mel.mel_power`); no GAN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from omni import trace
from omni.audio import tiny_mel
from omni.audio.griffin_lim import VocoderError, check_mel
from omni.audio.speech_mel import Framing, SpeechMelConfig


@dataclass
class VocosConfig:
    n_mels: int = 128               # = SpeechMelConfig.n_mels
    hop_length: int = 1280          # samples per mel frame (= SpeechMelConfig.hop_length: 12.5 Hz)
    upsample: int = 4               # U: sub-frames per mel frame; the head's hop is hop_length / U (320)
    n_fft: int = 1280               # the head's inverse STFT (window = n_fft, 4 × its hop)
    dim: int = 256                  # C
    intermediate: int = 768         # ConvNeXt's inner width
    n_layers: int = 6               # ConvNeXt blocks at the mel frame rate
    n_up_layers: int = 2            # ConvNeXt blocks at the sub-frame rate
    kernel_size: int = 7            # depth-wise convolution, in frames (at 80 ms: ± 240 ms of context)
    max_magnitude: float = 100.0    # exp(log|S|) is clipped here (Vocos's safeguard)

    def __post_init__(self):
        assert self.hop_length % self.upsample == 0, \
            f"hop_length {self.hop_length} must be divisible by upsample {self.upsample}"
        sub_hop = self.hop_length // self.upsample
        assert self.n_fft >= sub_hop and (self.n_fft - sub_hop) % 2 == 0, \
            f"n_fft {self.n_fft} must be ≥ the sub-hop {sub_hop} and differ from it by an even number"
        assert self.kernel_size % 2 == 1, f"kernel_size must be odd, got {self.kernel_size}"
        assert min(self.dim, self.intermediate, self.n_layers, self.upsample) >= 1, "sizes must be ≥ 1"

    @property
    def sub_hop(self) -> int:
        return self.hop_length // self.upsample             # 320 samples = 20 ms

    @property
    def framing(self) -> Framing:
        """The head's STFT pair: sub-frame j is centred on samples [j·sub_hop, (j+1)·sub_hop)."""
        return Framing(self.n_fft, self.sub_hop, self.n_fft, pad=(self.n_fft - self.sub_hop) // 2)


class ConvNeXtBlock(nn.Module):
    """x + γ · MLP(LayerNorm(depth-wise conv(x))): Vocos's block, on (B, T, C)."""

    def __init__(self, dim: int, intermediate: int, kernel_size: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.up = nn.Linear(dim, intermediate)
        self.down = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x.transpose(1, 2)).transpose(1, 2)                    # (B, T, C)
        h = self.down(F.gelu(self.up(self.norm(h))))
        return x + self.gamma * h


class VocosTiny(nn.Module):
    def __init__(self, cfg: VocosConfig):
        super().__init__()
        self.cfg = cfg
        C, scale = cfg.dim, 1.0 / (cfg.n_layers + cfg.n_up_layers)
        self.embed = nn.Conv1d(cfg.n_mels, C, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.norm_in = nn.LayerNorm(C, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(C, cfg.intermediate, cfg.kernel_size, scale)
                                    for _ in range(cfg.n_layers))
        self.expand = nn.Linear(C, cfg.upsample * C)                          # one frame → U sub-frames
        self.up_blocks = nn.ModuleList(ConvNeXtBlock(C, cfg.intermediate, cfg.kernel_size, scale)
                                       for _ in range(cfg.n_up_layers))
        self.norm_out = nn.LayerNorm(C, eps=1e-6)
        self.head = nn.Linear(C, 2 * (cfg.n_fft // 2 + 1))                    # log|S| and φ per bin

    def spectrogram(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, T, n_mels) → complex STFT (B, T·U, n_fft/2 + 1) of the waveform to be."""
        cfg = self.cfg
        assert mel.dim() == 3 and mel.shape[-1] == cfg.n_mels, \
            f"VocosTiny expects a mel (B, T, {cfg.n_mels}), got {tuple(mel.shape)}"
        B, T, _ = mel.shape
        x = self.embed(mel.float().transpose(1, 2)).transpose(1, 2)          # (B, T, C)
        x = self.norm_in(x)
        for block in self.blocks:
            x = block(x)
        trace.record("vocos.frames", x, "ConvNeXt features, one per 80 ms mel frame")
        x = self.expand(x).view(B, T * cfg.upsample, cfg.dim)                # (B, T·U, C)
        for block in self.up_blocks:
            x = block(x)
        out = self.head(self.norm_out(x)).float()                            # fp32 even under autocast: complex
        log_mag, phase = out.chunk(2, dim=-1)                                 # each (B, T·U, n_fft/2 + 1)
        mag = torch.exp(log_mag).clamp(max=cfg.max_magnitude)
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        trace.record("vocos.spec", spec, f"STFT of the wave: {cfg.upsample} sub-frames per mel frame")
        return spec

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, T, n_mels) → wave (B, T × hop_length)."""
        spec = self.spectrogram(mel)
        wave = self.cfg.framing.istft_frames(spec)                           # (B, T·U·sub_hop)
        assert wave.shape == (mel.shape[0], mel.shape[1] * self.cfg.hop_length), \
            f"VocosTiny gave {tuple(wave.shape)} samples for mel {tuple(mel.shape)}"
        return wave

    @trace.stage("vocoder")
    @torch.no_grad()
    def vocode(self, mel: torch.Tensor, mel_cfg: SpeechMelConfig = SpeechMelConfig()) -> torch.Tensor:
        """One mel (T, n_mels) in mel_cfg's domain → wave (T × hop,), as Griffin-Lim's ``mel_to_audio``."""
        check_mel(mel, mel_cfg)
        if (mel_cfg.n_mels, mel_cfg.hop_length) != (self.cfg.n_mels, self.cfg.hop_length):
            raise VocoderError(f"VocosTiny was built for {self.cfg.n_mels} mels, hop {self.cfg.hop_length}; "
                               f"the speech mel has {mel_cfg.n_mels}, hop {mel_cfg.hop_length}")
        device = next(self.parameters()).device
        trace.record("vocoder.mel", mel, f"speech mel ({mel_cfg.domain} domain), {mel_cfg.frame_rate:g} frames/s")
        wave = self(mel.to(device)[None])[0]                                  # (T × hop,)
        if not bool(torch.isfinite(wave).all()):
            raise VocoderError(f"VocosTiny produced {int((~torch.isfinite(wave)).sum())} NaN/Inf samples")
        wave = wave.clamp(-1.0, 1.0)                                          # a wav file's range
        trace.record("vocoder.wave", wave, f"waveform @ {mel_cfg.sample_rate} Hz (learned vocoder)")
        return wave


# -- the loss ------------------------------------------------------------------

RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))   # (n_fft, hop) of the multi-resolution STFT loss
MAG_FLOOR = 1e-5                                       # |S| floor before the log
MEL_FLOOR = 1e-10                                      # the ASR front end's power floor (tiny_mel.LOG_FLOOR)


def _magnitude(wave: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """wave (B, S) → |STFT| (B, n_fft/2 + 1, frames), Hann window, centred."""
    window = torch.hann_window(n_fft, device=wave.device)
    return torch.stft(wave, n_fft, hop, window=window, return_complex=True).abs()


def vocoder_loss(pred: torch.Tensor, target: torch.Tensor, mel_weight: float = 1.0
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """pred, target waves (B, S) → (loss, metrics).

    loss = mean over RESOLUTIONS of (spectral convergence + L1 of ln|S|)
           + mel_weight · L1 of log10 of the ASR front end's mel power (tiny_mel.mel_power).
    """
    assert pred.shape == target.shape and pred.dim() == 2, \
        f"vocoder_loss expects two waves (B, S) of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
    sc, log_l1 = pred.new_zeros(()), pred.new_zeros(())
    for n_fft, hop in RESOLUTIONS:
        p, t = _magnitude(pred, n_fft, hop), _magnitude(target, n_fft, hop)
        sc = sc + torch.linalg.vector_norm(t - p) / torch.linalg.vector_norm(t).clamp_min(MAG_FLOOR)
        log_l1 = log_l1 + F.l1_loss(p.clamp_min(MAG_FLOOR).log(), t.clamp_min(MAG_FLOOR).log())
    sc, log_l1 = sc / len(RESOLUTIONS), log_l1 / len(RESOLUTIONS)
    mel_l1 = F.l1_loss(tiny_mel.mel_power(pred).clamp_min(MEL_FLOOR).log10(),
                       tiny_mel.mel_power(target).clamp_min(MEL_FLOOR).log10())
    loss = sc + log_l1 + mel_weight * mel_l1
    return loss, {"spectral_convergence": sc.item(), "log_mag_l1": log_l1.item(), "asr_mel_l1": mel_l1.item()}

