"""RVQ: the residual vector quantiser that turns speech-mel frames into 2 codes each (seed 004, Parts 5-6).

    mel (B, T, 128) ──encoder──▶ z (B, T, 128) ──nearest of codebook 0──▶ code₀, residual = z − c₀[code₀]
                                               ──nearest of codebook 1──▶ code₁      → codes (B, T, 2)
    codes (B, T, 2) ──c₀[code₀] + c₁[code₁]──▶ ẑ (B, T, 128) ──decoder──▶ mel (B, T, 128)

Two encoders, chosen by ``CodecConfig.encoder``:

* ``"identity"`` (the seed's, the default): no network around the codebooks;
  they live directly in speech-mel space (dim = n_mels = 128). The seed sketches
  decoding as "lookup embeddings → sum → project"; here the projection is the
  identity, on purpose: decoding a pair of codes is then exactly the sum of two
  codebook rows (a test checks it bit for bit), and the codec is a transparent,
  inspectable k-means of single mel frames. 2 × 7 bits per 80 ms frame is
  coarse: expect a recognisable spectral envelope, not fidelity.
* ``"conv"``: a :class:`ConvStack` of residual 1-D convolutions over
  neighbouring frames on each side of the quantiser, so a frame's two codes
  can carry what its neighbours do not, and the decoder rebuilds each frame
  from the codes around it. The quantiser's space keeps the mel's size, and
  every block's last layer starts at zero: an untrained conv codec *is* the
  identity codec, so k-means on its encoder outputs is the seed's initialisation.
  Still one code pair per frame: codes (B, T, 2) and the Part 5/6 shapes as before.

Training (a mel autoencoder) uses the functions in this file:

* :func:`kmeans_init`: codebooks from data, stage by stage (k-means on the frames,
  then on what codebook 0 leaves);
* :meth:`RVQ.loss`: the VQ-VAE codebook term ‖sg(r) − q‖² pulls each used entry
  towards the residuals it quantises, plus β · ‖r − sg(q)‖² (commitment) for
  inputs that carry gradients; the quantised output passes gradients straight
  through. With the identity encoder the mel itself has no parameters, so only
  the codebook term trains anything there; the conv codec adds the mel
  reconstruction ‖decoder(q) − mel‖², which trains its encoder and decoder;
* :func:`code_counts` / :func:`reseed_dead_codes`: entries nobody picked over a
  window of batches are moved onto random residuals of the current batch;
* metrics: per-codebook usage and perplexity, mel L1 and SNR in dB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from omni import trace
from omni.nn.checks import check_ids


ENCODERS = ("identity", "conv")


@dataclass
class CodecConfig:
    dim: int = 128                  # = SpeechMelConfig.n_mels; also the quantiser's space (codebook rows)
    n_codebooks: int = 2            # K: base + residual
    codebook_size: int = 128        # entries per codebook (7 bits)
    commitment_weight: float = 0.25  # β of the VQ-VAE commitment term
    encoder: str = "identity"       # "identity": codebooks in mel space (the seed's); "conv": ConvStack each side
    hidden: int = 256               # conv: channels inside each residual block
    kernel_size: int = 5            # conv: frames one block's convolution sees (5 = ±160 ms)
    n_layers: int = 3               # conv: residual blocks in the encoder, and as many in the decoder

    def __post_init__(self):
        assert self.n_codebooks >= 1, f"n_codebooks must be ≥ 1, got {self.n_codebooks}"
        assert self.codebook_size >= 2, f"codebook_size must be ≥ 2, got {self.codebook_size}"
        assert self.dim >= 1, f"dim must be ≥ 1, got {self.dim}"
        assert self.encoder in ENCODERS, f"CodecConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}"
        assert self.kernel_size % 2 == 1, f"kernel_size must be odd (centred on the frame), got {self.kernel_size}"
        assert self.hidden >= 1 and self.n_layers >= 1, \
            f"hidden and n_layers must be ≥ 1, got {self.hidden}, {self.n_layers}"


@dataclass
class Quantized:
    codes: torch.Tensor         # (B, T, K) int64
    quantized: torch.Tensor     # (B, T, D) Σ_k c_k[code_k], gradients pass straight through to the input
    residuals: torch.Tensor     # (K, B, T, D) what stage k quantised (the input minus stages < k)
    chosen: torch.Tensor        # (K, B, T, D) the codebook rows stage k chose (carry codebook gradients)


class ConvStack(nn.Module):
    """Residual blocks over time, (B, T, D) → (B, T, D): x + W₂ · gelu(W₁ ∗ x) per block, W₁ a
    convolution over ``kernel_size`` neighbouring frames (edges repeat the first / last frame),
    W₂ per frame and zero at the start, so an untrained stack is the identity."""

    def __init__(self, dim: int, hidden: int, kernel_size: int, n_layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(
            nn.Conv1d(dim, hidden, kernel_size, padding=kernel_size // 2, padding_mode="replicate"),
            nn.GELU(),
            nn.Conv1d(hidden, dim, 1)) for _ in range(n_layers))
        for block in self.blocks:
            nn.init.zeros_(block[-1].weight)
            nn.init.zeros_(block[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)                                                 # (B, D, T)
        for block in self.blocks:
            h = h + block(h)
        return h.transpose(1, 2)                                              # (B, T, D)


class RVQ(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        # (K, N, D); overwritten by kmeans_init before training, unit-normal until then
        self.codebooks = nn.Parameter(torch.randn(cfg.n_codebooks, cfg.codebook_size, cfg.dim))
        if cfg.encoder == "conv":
            self.encoder = ConvStack(cfg.dim, cfg.hidden, cfg.kernel_size, cfg.n_layers)
            self.decoder = ConvStack(cfg.dim, cfg.hidden, cfg.kernel_size, cfg.n_layers)
        else:                                        # no weights: the seed's exports load strictly as before
            self.encoder, self.decoder = nn.Identity(), nn.Identity()

    def latents(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, T, D) → what the quantiser sees (B, T, D): the mel itself for the identity encoder."""
        self._check_input(mel)
        return self.encoder(mel)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.cfg.dim:
            raise ValueError(f"RVQ expects mel frames (B, T, {self.cfg.dim}), got {tuple(x.shape)}")

    def nearest(self, r: torch.Tensor, k: int) -> torch.Tensor:
        """Index of the nearest entry of codebook k for each row of r (..., D) → (...)."""
        cb = self.codebooks[k].detach()                                        # (N, D)
        d = r.pow(2).sum(-1, keepdim=True) - 2 * r @ cb.T + cb.pow(2).sum(-1)  # (..., N) squared distances
        return d.argmin(dim=-1)

    def quantize(self, x: torch.Tensor) -> Quantized:
        """x (B, T, D) → codes, straight-through quantised frames and the per-stage tensors."""
        self._check_input(x)
        residual = x
        codes, residuals, chosen = [], [], []
        for k in range(self.cfg.n_codebooks):
            idx = self.nearest(residual.detach(), k)                          # (B, T)
            q = F.embedding(idx, self.codebooks[k])                           # (B, T, D)
            codes.append(idx)
            residuals.append(residual)
            chosen.append(q)
            residual = residual - q.detach()                                  # the next stage sees what is left
        total = torch.stack(chosen).sum(0)                                    # (B, T, D)
        quantized = x + (total - x).detach()                                  # straight-through estimator
        return Quantized(torch.stack(codes, dim=-1), quantized, torch.stack(residuals), torch.stack(chosen))

    @trace.stage("rvq encode")
    @torch.no_grad()
    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, T, D) → codes (B, T, K): Part 6's (2, 50, 128) → (2, 50, 2)."""
        trace.record("rvq.mel", mel, "mel frames to quantise")
        z = self.latents(mel)                                                 # (B, T, D)
        if self.cfg.encoder == "conv":
            trace.record("rvq.latent", z, f"encoder: {self.cfg.n_layers} residual conv blocks over "
                         f"{self.cfg.kernel_size} frames")
        codes = self.quantize(z).codes
        trace.record("rvq.codes", codes, f"{self.cfg.n_codebooks} code indices per frame")
        return codes

    @trace.stage("rvq decode")
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, T, K) → mel (B, T, D): the decoder of the sum of the chosen codebook rows."""
        K, N = self.cfg.n_codebooks, self.cfg.codebook_size
        if codes.dim() != 3 or codes.shape[-1] != K:
            raise ValueError(f"RVQ.decode expects codes (B, T, {K}), got {tuple(codes.shape)}")
        check_ids(codes, N, "code", "the codebook")
        trace.record("rvq.decode.codes", codes, "code indices")
        z = F.embedding(codes[..., 0], self.codebooks[0])                      # (B, T, D)
        for k in range(1, K):
            z = z + F.embedding(codes[..., k], self.codebooks[k])
        if self.cfg.encoder == "conv":
            trace.record("rvq.decode.latent", z, "Σ of the chosen codebook rows")
            mel = self.decoder(z)                                             # (B, T, D)
            trace.record("rvq.decode.mel", mel, f"decoder: {self.cfg.n_layers} residual conv blocks "
                         "→ mel frames")
        else:
            mel = z
            trace.record("rvq.decode.mel", mel, "Σ of the chosen codebook rows = mel frames")
        return mel

    def loss(self, mel: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """One training objective on mel (B, T, D) → (scalar loss, metrics for the log).

        loss = Σ_k ‖sg(r_k) − q_k‖² + β · Σ_k ‖r_k − sg(q_k)‖² (means over elements), the r_k
        residuals of the encoder's output; the conv codec adds ‖decoder(q) − mel‖², the
        reconstruction (with the identity encoder it would train nothing, and is left out).
        """
        qz = self.quantize(self.latents(mel))
        recon = self.decoder(qz.quantized)                                    # (B, T, D)
        codebook = F.mse_loss(qz.chosen, qz.residuals.detach())
        commitment = F.mse_loss(qz.residuals, qz.chosen.detach())
        loss = codebook + self.cfg.commitment_weight * commitment
        metrics = {}
        if self.cfg.encoder == "conv":
            reconstruction = F.mse_loss(recon, mel)
            loss = loss + reconstruction
            metrics["reconstruction_loss"] = float(reconstruction.detach())
        with torch.no_grad():
            metrics.update({"loss": float(loss.detach()), "codebook_loss": float(codebook.detach()),
                            "commitment_loss": float(commitment.detach())})
            metrics.update(reconstruction_metrics(mel, recon))
            counts = code_counts(qz.codes, self.cfg.codebook_size)
            for k in range(self.cfg.n_codebooks):
                metrics[f"usage_{k}"] = float((counts[k] > 0).float().mean())
                metrics[f"perplexity_{k}"] = perplexity(counts[k])
        return loss, metrics


# -- training-side functions ---------------------------------------------------


def reconstruction_metrics(mel: torch.Tensor, recon: torch.Tensor) -> dict[str, float]:
    """mel L1 (mean |x − x̂|) and SNR in dB of the mel values around their mean:
    10 · log10(Σ (x − x̄)² / Σ (x − x̂)²). The mean is removed because a log mel
    sits far below 0 (silence is ln 1e-5 ≈ −11.5), which would flatter the SNR."""
    err = (mel - recon).float()
    centred = (mel - mel.mean()).float()
    snr = 10 * math.log10(max(float(centred.pow(2).sum()), 1e-20) / max(float(err.pow(2).sum()), 1e-20))
    return {"mel_l1": float(err.abs().mean()), "snr_db": snr}


def code_counts(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """codes (..., K) → how often each entry was chosen, (K, codebook_size) int64."""
    flat = codes.reshape(-1, codes.shape[-1])                                   # (M, K)
    return torch.stack([torch.bincount(flat[:, k], minlength=codebook_size) for k in range(flat.shape[1])])


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of one codebook's usage (codebook_size,): 1 = one entry used, N = all used evenly."""
    p = counts.float() / counts.sum().clamp_min(1)
    return float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))


def _flatten_frames(mel: torch.Tensor, dim: int) -> torch.Tensor:
    if mel.shape[-1] != dim:
        raise ValueError(f"expected frames (..., {dim}), got {tuple(mel.shape)}")
    return mel.reshape(-1, dim).float()                                         # (M, D)


@torch.no_grad()
def kmeans_init(rvq: RVQ, mel: torch.Tensor, n_iter: int = 10, generator: torch.Generator | None = None) -> None:
    """Set every codebook by k-means: codebook 0 on the frames of mel (..., D) (the encoder's
    outputs, :meth:`RVQ.latents`, for a conv codec), codebook k on what codebooks < k leave. Starts from random distinct frames;
    an entry that loses all its frames is moved to a random frame."""
    N = rvq.cfg.codebook_size
    residual = _flatten_frames(mel, rvq.cfg.dim)                                 # (M, D)
    M = residual.shape[0]
    if M < N:
        raise ValueError(f"k-means needs at least codebook_size={N} frames, got {M}")
    for k in range(rvq.cfg.n_codebooks):
        centroids = residual[torch.randperm(M, generator=generator)[:N]].clone()  # (N, D)
        for _ in range(n_iter):
            rvq.codebooks.data[k] = centroids
            idx = rvq.nearest(residual, k)                                      # (M,)
            sums = torch.zeros_like(centroids).index_add_(0, idx, residual)
            counts = torch.bincount(idx, minlength=N)
            empty = counts == 0
            centroids = sums / counts.clamp_min(1)[:, None]
            if bool(empty.any()):
                centroids[empty] = residual[torch.randint(M, (int(empty.sum()),), generator=generator)]
        rvq.codebooks.data[k] = centroids
        residual = residual - centroids[rvq.nearest(residual, k)]


@torch.no_grad()
def reseed_dead_codes(rvq: RVQ, mel: torch.Tensor, counts: torch.Tensor, min_count: int = 1,
                      generator: torch.Generator | None = None) -> list[int]:
    """Move every entry chosen fewer than ``min_count`` times (counts (K, N), e.g.
    summed :func:`code_counts` over recent batches) onto a random residual that
    its stage sees in mel (..., D) (the encoder's outputs for a conv codec). Returns how many were moved per codebook."""
    K, N = rvq.cfg.n_codebooks, rvq.cfg.codebook_size
    if tuple(counts.shape) != (K, N):
        raise ValueError(f"counts must be (n_codebooks, codebook_size) = ({K}, {N}), got {tuple(counts.shape)}")
    residual = _flatten_frames(mel, rvq.cfg.dim)                                 # (M, D)
    moved = []
    for k in range(K):
        dead = (counts[k] < min_count).nonzero().flatten()
        if len(dead):
            pick = torch.randint(residual.shape[0], (len(dead),), generator=generator)
            rvq.codebooks.data[k, dead] = residual[pick].to(rvq.codebooks.dtype)
        moved.append(len(dead))
        residual = residual - rvq.codebooks[k][rvq.nearest(residual, k)]
    return moved
