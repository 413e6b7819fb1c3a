"""The vision stage's optional scene-attribute head: caption parsing, labels, loss, accuracy."""

import numpy as np
import pytest
import torch

from omni.data.language import SCENE_COLOURS, SCENE_SHAPES, SCENE_SIZES
from omni.data.scenes import caption, parse_caption, sample_scene
from omni.models.attribute_head import AttributeHead, column_pool
from omni.models.contrastive import ContrastiveConfig, ContrastiveModel, TextTowerConfig
from omni.models.vision import VisionConfig
from omni.training.contrastive import ATTRIBUTE_CLASSES, contrastive_loss, scene_attributes


def test_parse_caption_inverts_caption_on_sampled_scenes():
    rng = np.random.default_rng(0)
    for _ in range(300):
        scene = sample_scene(rng)
        assert parse_caption(caption(scene)) == {o.column: (o.size, o.colour, o.shape) for o in scene.objects}


@pytest.mark.parametrize("text", ["a big thing", "a large red blob on the left",
                                  "a large red circle on the left, a small blue square in the middle"])
def test_a_caption_that_is_not_a_scene_caption_is_named(text):
    with pytest.raises(ValueError, match="caption 'a "):
        parse_caption(text)


def test_labels_put_none_in_empty_columns():
    labels = scene_attributes("a large red circle on the left and a small blue square on the right")
    none = [len(SCENE_SHAPES), len(SCENE_COLOURS), len(SCENE_SIZES)]
    assert ATTRIBUTE_CLASSES == [n + 1 for n in none]
    assert labels.tolist() == [[SCENE_SHAPES.index("circle"), SCENE_COLOURS.index("red"), SCENE_SIZES.index("large")],
                               none,
                               [SCENE_SHAPES.index("square"), SCENE_COLOURS.index("blue"), SCENE_SIZES.index("small")]]


def test_head_shapes_and_split():
    head = AttributeHead(n_tokens=5, d_in=8, slots=3, classes=(7, 9, 3))
    logits = head(torch.randn(2, 5, 8))
    assert logits.shape == (2, 3, 19) and [p.shape[-1] for p in head.split(logits)] == [7, 9, 3]
    with pytest.raises(AssertionError, match="expects 5 tokens, got 4"):
        head(torch.randn(2, 4, 8))


def test_column_pool_averages_the_patches_of_each_column():
    pool = column_pool(grid=7, slots=3)                         # 224 px / 32: patch columns 0-1 | 2-4 | 5-6
    assert pool.shape == (3, 49) and torch.allclose(pool.sum(dim=1), torch.ones(3))
    columns = (pool > 0).view(3, 7, 7).any(dim=1)               # (slots, patch column): same for every row
    assert [c.nonzero().flatten().tolist() for c in columns] == [[0, 1], [2, 3, 4], [5, 6]]
    assert (pool > 0).sum(dim=0).eq(1).all()                    # each patch in exactly one column
    with pytest.raises(ValueError, match="2 × 2 patch grid cannot give each of 3 columns"):
        column_pool(grid=2, slots=3)


def test_token_readout_is_one_shared_linear_read_per_column():
    head = AttributeHead(n_tokens=10, d_in=8, slots=3, classes=(7, 9, 3), readout="tokens")
    assert head.proj.weight.shape == (19, 8)
    tokens = torch.zeros(2, 10, 8)
    tokens[:, 1 + 3 * 2 + 0] = torch.randn(2, 8)                # one patch, grid row 2, column 0 (left)
    logits = head(tokens)
    assert logits.shape == (2, 3, 19)
    bias = head.proj.bias.expand(2, 19)
    assert torch.allclose(logits[:, 1], bias) and torch.allclose(logits[:, 2], bias)   # middle, right: untouched
    assert torch.allclose(logits[:, 0], bias + head.proj(tokens[:, 7]) / 3 - bias / 3, atol=1e-6)
    with pytest.raises(ValueError, match="readout must be one of"):
        AttributeHead(n_tokens=10, d_in=8, slots=3, classes=(7, 9, 3), readout="mean")


def tiny(attributes: bool) -> ContrastiveModel:
    return ContrastiveModel(ContrastiveConfig(
        vision=VisionConfig(image_size=32, patch_size=16, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64),
        text=TextTowerConfig(vocab_size=32, ctx_len=8, d_model=24, n_layers=1, n_heads=2, ffn_hidden=48),
        embed_dim=16, attribute_slots=3 if attributes else 0, attribute_classes=ATTRIBUTE_CLASSES if attributes else []))


def test_half_set_config_and_missing_head_are_named():
    with pytest.raises(ValueError, match="must be set together"):
        ContrastiveConfig(attribute_slots=3)
    batch = {"pixels": torch.randn(2, 3, 32, 32), "ids": torch.randint(3, 32, (2, 5)), "caption_index": torch.arange(2),
             "attributes": torch.zeros(2, 3, 3, dtype=torch.long)}
    with pytest.raises(ValueError, match="no attribute head"):
        contrastive_loss(tiny(False), batch, attribute_weight=1.0)


def test_a_tiny_model_learns_the_shape_in_the_left_column():
    torch.manual_seed(0)
    model = tiny(True)
    left, right = torch.zeros(3, 32, 32), torch.zeros(3, 32, 32)
    left[:, :, :16], right[:, :, 16:] = 2.0, 2.0
    labels = torch.stack([scene_attributes("a large red circle on the left"),
                          scene_attributes("a small blue star on the right")])
    batch = {"pixels": torch.stack([left, right] * 4), "ids": torch.randint(3, 32, (8, 5)),
             "caption_index": torch.arange(8), "attributes": labels.repeat(4, 1, 1)}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss, info = contrastive_loss(model, batch, attribute_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert "attribute_loss" in info and info["attribute_loss"] < 0.1
    with torch.no_grad():
        shapes = model.attribute_head.split(model(batch["pixels"], batch["ids"]).attribute_logits)[0].argmax(-1)
    assert shapes[:2, 0].tolist() == [SCENE_SHAPES.index("circle"), len(SCENE_SHAPES)]   # left: circle / none
