"""ViTTiny (seed 004, Part 2) shapes, and Pillow image loading: modes, sizes,
normalisation and bad files."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from omni import trace
from omni.images import (BACKGROUND, IMAGE_SIZE, MEAN, STD, ImageError, denormalize, load_image,
                         preprocess_image)
from omni.models.vision import VisionConfig, ViTTiny


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return ViTTiny(VisionConfig()).eval()


def test_config_defaults_match_seed():
    c = VisionConfig()
    assert (c.image_size, c.patch_size, c.d_model, c.n_layers, c.grid, c.n_patches) == (224, 16, 128, 4, 14, 196)
    with pytest.raises(AssertionError, match="not divisible by patch_size"):
        VisionConfig(image_size=200)
    with pytest.raises(TypeError):
        VisionConfig(**{"bogus": 1})


def test_part2_shape_chain_through_the_tracer(vit):
    with trace.Tracer() as tr, torch.no_grad():
        cls, patches = vit(torch.randn(1, 3, 224, 224))
    assert tr.shape("vision.pixels") == (1, 3, 224, 224)
    assert tr.shape("vision.patches") == (1, 128, 14, 14)
    assert tr.shape("vision.tokens") == (1, 196, 128)
    assert tr.shape("vision.with_cls") == (1, 197, 128)
    assert tr.shape("vision.pos") == (1, 197, 128)
    for i in range(4):
        assert tr.shape(f"vision.layer{i}.out") == (1, 197, 128)
        assert tr.shape(f"vision.layer{i}.attn.scores") == (1, 4, 197, 197)
    assert tr.shape("vision.cls") == (1, 1, 128)
    assert tr.shape("vision.grid") == (1, 196, 128)
    assert cls.shape == (1, 1, 128) and patches.shape == (1, 196, 128)


def test_part2_shapes_directly(vit):
    img = torch.randn(2, 3, 224, 224)
    x = vit.proj(img)
    assert x.shape == (2, 128, 14, 14)
    assert x.flatten(2).transpose(1, 2).shape == (2, 196, 128)
    assert vit.cls.shape == (1, 1, 128) and vit.pos.shape == (1, 197, 128)
    with torch.no_grad():
        cls, patches = vit(img)
    assert cls.shape == (2, 1, 128) and patches.shape == (2, 196, 128)
    # the CLS is the first of the 197 outputs: swapping the batch rows swaps it too
    with torch.no_grad():
        cls_swapped, _ = vit(img.flip(0))
    torch.testing.assert_close(cls_swapped, cls.flip(0))


def test_bad_pixels(vit):
    with pytest.raises(AssertionError, match=r"expects pixels \(B, 3, 224, 224\), got \(1, 3, 200, 200\)"):
        vit(torch.randn(1, 3, 200, 200))
    with pytest.raises(AssertionError, match=r"got \(3, 224, 224\)"):
        vit(torch.randn(3, 224, 224))
    with pytest.raises(RuntimeError, match="ViTTiny CLS token are not finite"):
        vit(torch.full((1, 3, 224, 224), float("nan")))


# ---------------------------------------------------------------- image loading
def colour_value(rgb):
    """The normalised (3,) value a uniform colour becomes."""
    return (torch.tensor(rgb, dtype=torch.float32) / 255 - torch.tensor(MEAN)) / torch.tensor(STD)


def assert_uniform(x, rgb, atol=1e-5):
    assert x.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(x, colour_value(rgb)[:, None, None].expand_as(x), atol=atol, rtol=0)


@pytest.mark.parametrize("mode,make,expected", [
    ("RGB", lambda: Image.new("RGB", (50, 40), (10, 200, 30)), (10, 200, 30)),
    ("L", lambda: Image.new("L", (300, 200), 77), (77, 77, 77)),
    ("1", lambda: Image.new("1", (30, 30), 1), (255, 255, 255)),
    ("CMYK", lambda: Image.new("CMYK", (64, 64), (0, 255, 255, 0)), (255, 0, 0)),
    ("RGBA opaque", lambda: Image.new("RGBA", (64, 64), (0, 0, 255, 255)), (0, 0, 255)),
    ("RGBA clear", lambda: Image.new("RGBA", (64, 64), (0, 0, 255, 0)), BACKGROUND),
    ("LA clear", lambda: Image.new("LA", (64, 64), (0, 0)), BACKGROUND),
    ("I;16", lambda: Image.fromarray(np.full((32, 32), 65535, dtype=np.uint16)), (255, 255, 255)),
])
def test_modes_become_rgb(mode, make, expected):
    img = make()
    assert img.mode == mode.split()[0]
    assert_uniform(preprocess_image(img), expected)


def test_half_transparent_is_composited_on_white():
    x = preprocess_image(Image.new("RGBA", (64, 64), (0, 0, 0, 128)))
    assert_uniform(x, (127, 127, 127), atol=0.02)


def test_palette_images_with_and_without_transparency():
    p = Image.new("P", (40, 40), 1)
    p.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    assert_uniform(preprocess_image(p), (200, 100, 50))
    p.info["transparency"] = 1                       # colour index 1 is transparent
    assert_uniform(preprocess_image(p), BACKGROUND)


@pytest.mark.parametrize("size", [(1, 1), (224, 224), (50, 300), (1000, 20), (640, 480)])
def test_any_size_becomes_224(size):
    assert_uniform(preprocess_image(Image.new("RGB", size, (90, 90, 90))), (90, 90, 90))


def test_resize_keeps_the_centre_square():
    # 600 × 200: the centre square is x ∈ [200, 400); paint red and blue well outside it.
    a = np.zeros((200, 600, 3), dtype=np.uint8)
    a[:] = (0, 255, 0)
    a[:, :150] = (255, 0, 0)
    a[:, 450:] = (0, 0, 255)
    assert_uniform(preprocess_image(Image.fromarray(a)), (0, 255, 0))
    # a tall image: top half black, bottom half white → the centre square shows both halves
    b = np.zeros((400, 100, 3), dtype=np.uint8)
    b[200:] = 255
    x = denormalize(preprocess_image(Image.fromarray(b)))
    assert x[:, :100].max() < 0.02 and x[:, 124:].min() > 0.98


def test_normalisation_round_trip():
    x = preprocess_image(Image.new("RGB", (8, 8), (255, 255, 255)))
    torch.testing.assert_close(x[:, 0, 0], (1 - torch.tensor(MEAN)) / torch.tensor(STD))
    torch.testing.assert_close(denormalize(x), torch.ones(3, 224, 224))


def test_load_image_from_files(tmp_path):
    for fmt, mode in (("png", "RGBA"), ("jpeg", "L"), ("gif", "P"), ("tiff", "CMYK")):
        img = Image.new(mode, (120, 90), {"RGBA": (0, 0, 0, 255), "L": 0, "P": 0, "CMYK": (0, 0, 0, 255)}[mode])
        path = tmp_path / f"pic.{fmt}"
        img.save(path)
        x = load_image(path)
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32
        assert_uniform(x, (0, 0, 0), atol=0.02)


def test_bad_image_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageError, match="junk.png"):
        load_image(junk)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg"):
        load_image(empty)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    cut = tmp_path / "truncated.png"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated.png"):
        load_image(cut)


def test_unsupported_mode_names_it():
    with pytest.raises(ImageError, match="my picture: unsupported image mode 'F'"):
        preprocess_image(Image.new("F", (8, 8), 0.5), what="my picture")


def test_the_blocks_start_from_vits_truncated_normal_not_torchs_uniform():
    torch.manual_seed(0)
    vit = ViTTiny(VisionConfig(image_size=64, patch_size=16, d_model=128, n_layers=2, n_heads=4, ffn_hidden=512))
    linears = [m for m in vit.blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert linears
    for m in linears:
        assert float(m.weight.abs().max()) <= 0.04 + 1e-7                   # truncated at ±2σ
        assert abs(float(m.weight.std()) - 0.0176) < 0.002                   # σ of N(0, 0.02²) cut at ±2σ
        assert m.bias is None or not m.bias.any()
