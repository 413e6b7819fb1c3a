import numpy as np
import pytest
import torch
from PIL import Image

from omni.viz import colormap, image_png, mel_png


def test_mel_png_is_a_heat_map_with_low_bins_at_the_bottom(tmp_path):
    mel = torch.full((50, 128), -10.0)
    mel[:, :10] = 0.0                                   # energy only in the lowest bins
    path = mel_png(mel, tmp_path / "m.png", title="test")
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert img.shape[1] >= 256
    bottom, top = img[-5, 10], img[30, 10]
    assert tuple(bottom) == tuple(colormap(np.array(1.0))) and tuple(top) == tuple(colormap(np.array(0.0)))


def test_mel_png_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        mel_png(torch.full((4, 8), float("nan")), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\(T, F\)"):
        mel_png(torch.zeros(8), tmp_path / "x.png")


def test_image_png_undoes_normalisation(tmp_path):
    from omni.images import normalize

    rgb = np.zeros((224, 224, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    path = image_png(normalize(rgb), tmp_path / "i.png")
    back = np.asarray(Image.open(path))
    assert abs(int(back[0, 0, 0]) - 200) <= 1 and back[0, 0, 1] == 0
