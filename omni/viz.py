"""Pictures for the demo report, drawn with Pillow (no plotting library):
mel spectrograms as heat maps and normalised image tensors back to PNG.
(Loss curves are drawn by omni/training/metrics.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

# A perceptually ordered dark-blue → yellow ramp (viridis' end points and three stops).
_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def colormap(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) → uint8 RGB (..., 3)."""
    x = np.clip(x, 0.0, 1.0) * (len(_STOPS) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_STOPS) - 2)
    frac = (x - lo)[..., None]
    return (_STOPS[lo] * (1 - frac) + _STOPS[lo + 1] * frac).round().astype(np.uint8)


def mel_png(mel: torch.Tensor, path: str | os.PathLike, title: str = "", px_per_frame: int = 0,
            height: int = 256) -> Path:
    """Save a log-mel (T, F) as a heat map: time left → right, low frequencies at the bottom.

    Colours span the clip's own [max − 80 dB-equivalent range, max]: the top 8
    log10 units for a log10 mel, or its full range when it is narrower.
    """
    from PIL import Image, ImageDraw

    m = mel.detach().float().cpu()
    if m.dim() == 3:
        if m.shape[0] != 1:
            raise ValueError(f"mel_png draws one clip, got a batch of {m.shape[0]}")
        m = m[0]
    if m.dim() != 2 or m.numel() == 0:
        raise ValueError(f"mel_png expects a (T, F) mel, got shape {tuple(mel.shape)}")
    if not torch.isfinite(m).all():
        raise ValueError(f"mel for {path} has NaN/Inf values")
    a = m.numpy().T[::-1]                                   # (F, T), low bins at the bottom
    hi = a.max()
    lo = max(a.min(), hi - 8.0) if hi - a.min() > 8.0 else a.min()
    norm = (a - lo) / max(hi - lo, 1e-9)
    img = Image.fromarray(colormap(norm), "RGB")
    T, F = m.shape
    width = max(256, min(1600, T * (px_per_frame or max(1, 800 // max(T, 1)))))
    img = img.resize((width, height), Image.NEAREST if T < width else Image.BILINEAR)
    if title:
        canvas = Image.new("RGB", (width, height + 18), "white")
        canvas.paste(img, (0, 18))
        ImageDraw.Draw(canvas).text((4, 3), title, fill="black")
        img = canvas
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def image_png(pixels: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save a normalised image tensor (3, H, W) or (1, 3, H, W) as PNG (undoing omni.images' normalisation)."""
    from PIL import Image

    from omni.images import denormalize

    x = pixels.detach().cpu()
    if x.dim() == 4:
        x = x[0]
    rgb = denormalize(x)
    arr = rgb.numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
    if arr.shape[0] == 3:
        arr = arr.transpose(1, 2, 0)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path)
    return path
