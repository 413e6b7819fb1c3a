"""VisionConfig.stem = "conv": ConvStem gives ViTTiny the same token grid as the seed's patchify."""

import pytest
import torch

from omni import trace
from omni.models.vision import VisionConfig, ViTTiny
from omni.nn.conv_stem import ConvStem


@pytest.mark.parametrize("image_size,patch_size", [(224, 16), (224, 32), (64, 16)])
def test_conv_stem_keeps_the_patch_grid(image_size, patch_size):
    torch.manual_seed(0)
    patch = ViTTiny(VisionConfig(image_size=image_size, patch_size=patch_size, n_layers=1)).eval()
    conv = ViTTiny(VisionConfig(image_size=image_size, patch_size=patch_size, n_layers=1, stem="conv")).eval()
    pixels = torch.randn(2, 3, image_size, image_size)
    grid = image_size // patch_size
    assert conv.proj(pixels).shape == patch.proj(pixels).shape == (2, 128, grid, grid)
    with trace.Tracer() as tr, torch.no_grad():
        cls, patches = conv(pixels)
    assert cls.shape == (2, 1, 128) and patches.shape == (2, grid * grid, 128)
    assert tr.shape("vision.patches") == (2, 128, grid, grid)
    assert tr.shape("vision.tokens") == (2, grid * grid, 128)


def test_conv_stem_layers_and_channels():
    stem = ConvStem(3, 128, 32)
    convs = [m for m in stem.layers if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128, 128, 128]     # 5 stride-2 convs, then the 1×1
    assert [c.stride for c in convs[:-1]] == [(2, 2)] * 5 and convs[-1].kernel_size == (1, 1)


def test_conv_stem_learns_through_every_layer():
    stem = ConvStem(3, 32, 8)
    stem(torch.randn(4, 3, 32, 32)).square().mean().backward()
    for name, p in stem.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"


def test_bad_stem_and_patch_size_are_named():
    with pytest.raises(ValueError, match="VisionConfig.stem must be one of"):
        VisionConfig(stem="resnet")
    with pytest.raises(ValueError, match="power-of-two patch_size"):
        ConvStem(3, 128, 24)
