"""RVQ: the residual vector quantiser that turns speech-mel frames into 2 codes each (seed 004, Parts 5-6).

    mel (B, T, 128) ──nearest of codebook 0──▶ code₀, residual = mel − c₀[code₀]
                    ──nearest of codebook 1──▶ code₁                          → codes (B, T, 2)
    codes (B, T, 2) ──c₀[code₀] + c₁[code₁]──▶ mel (B, T, 128)

The codebooks live directly in speech-mel space (dim = n_mels = 128), with no
encoder or decoder network around them. The seed sketches decoding as "lookup
embeddings → sum → project"; here the projection is the identity, on purpose:
decoding a pair of codes is then exactly the sum of two codebook rows (a test
checks it bit for bit), and the codec is a transparent, inspectable k-means
of mel frames. 2 × 7 bits per 80 ms frame is coarse: expect a recognisable
spectral envelope, not fidelity.

Training (a mel autoencoder) uses the functions in this file:

* :func:`kmeans_init`: codebooks from data, stage by stage (k-means on the frames,
  then on what codebook 0 leaves);
* :meth:`RVQ.loss`: the VQ-VAE codebook term ‖sg(r) − q‖² pulls each used entry
  towards the residuals it quantises, plus β · ‖r − sg(q)‖² (commitment) for
  inputs that carry gradients; the quantised output passes gradients straight
  through. With the identity encoder the mel itself has no parameters, so only
  the codebook term trains anything here;
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


@dataclass
class CodecConfig:
    dim: int = 128                  # = SpeechMelConfig.n_mels: codebooks live in mel space
    n_codebooks: int = 2            # K: base + residual
    codebook_size: int = 128        # entries per codebook (7 bits)
    commitment_weight: float = 0.25  # β of the VQ-VAE commitment term

    def __post_init__(self):
        assert self.n_codebooks >= 1, f"n_codebooks must be ≥ 1, got {self.n_codebooks}"
        assert self.codebook_size >= 2, f"codebook_size must be ≥ 2, got {self.codebook_size}"
        assert self.dim >= 1, f"dim must be ≥ 1, got {self.dim}"


@dataclass
class Quantized:
    codes: torch.Tensor         # (B, T, K) int64
    quantized: torch.Tensor     # (B, T, D) Σ_k c_k[code_k], gradients pass straight through to the input
    residuals: torch.Tensor     # (K, B, T, D) what stage k quantised (the input minus stages < k)
    chosen: torch.Tensor        # (K, B, T, D) the codebook rows stage k chose (carry codebook gradients)


class RVQ(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        # (K, N, D); overwritten by kmeans_init before training, unit-normal until then
        self.codebooks = nn.Parameter(torch.randn(cfg.n_codebooks, cfg.codebook_size, cfg.dim))

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
        codes = self.quantize(mel).codes
        trace.record("rvq.codes", codes, f"{self.cfg.n_codebooks} code indices per frame")
        return codes

    @trace.stage("rvq decode")
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, T, K) → mel (B, T, D): the sum of the chosen codebook rows."""
        K, N = self.cfg.n_codebooks, self.cfg.codebook_size
        if codes.dim() != 3 or codes.shape[-1] != K:
            raise ValueError(f"RVQ.decode expects codes (B, T, {K}), got {tuple(codes.shape)}")
        check_ids(codes, N, "code", "the codebook")
        trace.record("rvq.decode.codes", codes, "code indices")
        mel = F.embedding(codes[..., 0], self.codebooks[0])                    # (B, T, D)
        for k in range(1, K):
            mel = mel + F.embedding(codes[..., k], self.codebooks[k])
        trace.record("rvq.decode.mel", mel, "Σ of the chosen codebook rows = mel frames")
        return mel

    def loss(self, mel: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """One training objective on mel (B, T, D) → (scalar loss, metrics for the log).

        loss = Σ_k ‖sg(r_k) − q_k‖² + β · Σ_k ‖r_k − sg(q_k)‖² (means over elements).
        """
        qz = self.quantize(mel)
        codebook = F.mse_loss(qz.chosen, qz.residuals.detach())
        commitment = F.mse_loss(qz.residuals, qz.chosen.detach())
        loss = codebook + self.cfg.commitment_weight * commitment
        with torch.no_grad():
            metrics = {"loss": float(loss.detach()), "codebook_loss": float(codebook.detach()),
                       "commitment_loss": float(commitment.detach())}
            metrics.update(reconstruction_metrics(mel, qz.quantized))
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
    """Set every codebook by k-means: codebook 0 on the frames of mel (..., D),
    codebook k on what codebooks < k leave. Starts from random distinct frames;
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
    its stage sees in mel (..., D). Returns how many were moved per codebook."""
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
