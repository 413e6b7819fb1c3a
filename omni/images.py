"""Image files → the normalised (3, 224, 224) tensor ViTTiny sees.

    file ──Pillow──▶ any mode ──▶ RGB ──centre square crop──▶ 224 × 224 (bicubic)
         ──/255──▶ [0, 1] ──(x − mean) / std per channel──▶ (3, 224, 224) float32

Choices, and why:

* **Modes.** RGB passes through; L, 1, P (palette), CMYK, YCbCr, LAB, HSV
  convert with Pillow; 16/32-bit greyscale (I;16, I) is scaled from its full
  range to 8 bits first (16-bit PNGs open this way). Any image with
  transparency (RGBA, LA, PA, P with a transparent colour) is composited onto
  a **white** background (:data:`BACKGROUND`): documents and icons, the usual
  transparent images, are drawn for a white page. Other modes (F, ...) raise
  :class:`ImageError` naming the mode and the file.
* **Resize.** The centred square of side min(width, height) is resized to
  224 × 224 with bicubic filtering. This equals "resize the shorter side to 224,
  then centre-crop" (CLIP's preprocessing) but never builds the huge
  intermediate an extreme aspect ratio would need.
* **Normalisation.** CLIP's per-channel mean and std (:data:`MEAN`,
  :data:`STD`): the vision tower is trained CLIP-style (contrastive), and these
  are the statistics that recipe uses.
* The EXIF orientation tag is applied first, so photos come out upright.

A missing file raises ``FileNotFoundError``, an unreadable or truncated one
:class:`ImageError`; both name the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

IMAGE_SIZE = 224
MEAN = (0.48145466, 0.4578275, 0.40821073)    # CLIP's RGB statistics
STD = (0.26862954, 0.26130258, 0.27577711)
BACKGROUND = (255, 255, 255)                   # transparent pixels are composited onto white
_DIRECT_MODES = {"RGB", "L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_WIDE_GREY_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": None}
SUPPORTED_MODES = frozenset(_DIRECT_MODES | _ALPHA_MODES | set(_WIDE_GREY_MODES))   # what to_rgb converts


class ImageError(ValueError):
    """An image file or picture that cannot be used; the message names it."""


def load_image(path: str | os.PathLike, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Read ``path`` → normalised float32 tensor (3, size, size)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()                     # decode now, so a truncated file fails here
            img = ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:   # Pillow reports bad data as OSError/SyntaxError
        raise ImageError(f"cannot decode image file {path}: {e}") from e
    return preprocess_image(img, size=size, what=str(path))


def to_rgb(img, what: str = "image"):
    """A PIL image of any supported mode → RGB (see the module docstring for the rules)."""
    from PIL import Image

    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        page = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(page, rgba).convert("RGB")
    if mode in _WIDE_GREY_MODES:
        a = np.asarray(img, dtype=np.float64)
        top = _WIDE_GREY_MODES[mode] or max(float(a.max()), 1.0)   # mode "I": scale by the image's own peak
        grey = np.clip(np.rint(a / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in _DIRECT_MODES:
        return img.convert("RGB")
    raise ImageError(f"{what}: unsupported image mode {mode!r} (supported: {sorted(SUPPORTED_MODES)})")


def center_square_resize(img, size: int = IMAGE_SIZE):
    """Crop the centred min(w, h) square and resize it to size × size (bicubic)."""
    from PIL import Image

    w, h = img.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    return img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))


def normalize(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → float32 (3, H, W), (x / 255 − MEAN) / STD."""
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0   # (3, H, W), a copy
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (x - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: (3, H, W) → values in [0, 1] (for showing an input)."""
    return x * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)


def preprocess_image(img, size: int = IMAGE_SIZE, what: str = "image") -> torch.Tensor:
    """A PIL image (any supported mode and size) → normalised (3, size, size) float32."""
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageError(f"{what}: empty image of size {w}×{h}")
    rgb = center_square_resize(to_rgb(img, what), size)
    out = normalize(np.asarray(rgb, dtype=np.uint8))
    assert out.shape == (3, size, size), f"preprocess_image made {tuple(out.shape)}, want (3, {size}, {size})"
    return out
