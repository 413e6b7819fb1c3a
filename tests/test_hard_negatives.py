"""NegCLIP hard negatives for the vision stage: swapped captions, their batches and their loss."""

import random

import pytest
import torch

from omni.data.language import SCENE_COLOURS, SCENE_SHAPES, SCENE_SIZES
from omni.models.contrastive import ContrastiveConfig, ContrastiveModel, TextTowerConfig
from omni.models.vision import VisionConfig
from omni.training.contrastive import collate_captions, contrastive_loss, info_nce, info_nce_with_negatives, \
    swapped_captions

CAPTION = "a large red circle on the left and a small blue square in the middle"


def test_each_negative_swaps_one_word_within_its_group_shape_colour_size_in_turn():
    words = CAPTION.split()
    negs = swapped_captions(CAPTION, 6, random.Random(0))
    groups = []
    for neg in negs:
        diff = [(a, b) for a, b in zip(words, neg.split()) if a != b]
        assert len(neg.split()) == len(words) and len(diff) == 1, (neg, diff)
        old, new = diff[0]
        group = next(g for g in (SCENE_SHAPES, SCENE_COLOURS, SCENE_SIZES) if old in g)
        assert new in group and new != old
        groups.append(group)
    assert groups == [SCENE_SHAPES, SCENE_COLOURS, SCENE_SIZES] * 2
    assert swapped_captions(CAPTION, 3, random.Random(1)) == swapped_captions(CAPTION, 3, random.Random(1))


def test_a_caption_without_attribute_words_is_named():
    with pytest.raises(ValueError, match="no shape, colour or size word"):
        swapped_captions("a picture of nothing", 1, random.Random(0))


def test_collate_puts_the_negatives_item_major_after_the_captions():
    items = [{"pixels": torch.zeros(3, 8, 8), "ids": torch.tensor([1, 5, 2]), "caption_index": torch.tensor(i),
              "neg_ids": [torch.tensor([1, 6 + i, 2]), torch.tensor([1, 7, 8 + i, 2])]} for i in range(3)]
    batch = collate_captions(items)
    assert batch["ids"].shape == (3, 3) and batch["neg_ids"].shape == (6, 4)
    assert batch["neg_ids"][2, :3].tolist() == [1, 7, 2] and batch["neg_ids"][3, :4].tolist() == [1, 7, 9, 2]


def test_negatives_are_wrong_columns_of_the_image_to_caption_choice():
    torch.manual_seed(0)
    logits = torch.randn(4, 4)
    far = torch.full((4, 8), -1e4)
    # negatives nobody would pick: the loss is the plain InfoNCE
    torch.testing.assert_close(info_nce_with_negatives(torch.cat([logits, far], 1), torch.arange(4)),
                               info_nce(logits))
    # a negative as close as the true caption costs image→caption probability, and nothing else
    close = torch.cat([logits, logits.diagonal()[:, None].expand(4, 8)], 1)
    assert info_nce_with_negatives(close, torch.arange(4)) > info_nce(logits) + 0.5


def test_a_tiny_model_learns_against_its_hard_negatives():
    torch.manual_seed(0)
    cfg = ContrastiveConfig(vision=VisionConfig(image_size=32, patch_size=16, d_model=32, n_layers=1, n_heads=2,
                                                ffn_hidden=64),
                            text=TextTowerConfig(vocab_size=32, ctx_len=8, d_model=32, n_layers=1, n_heads=2,
                                                 ffn_hidden=64), embed_dim=16)
    model = ContrastiveModel(cfg)
    batch = {"pixels": torch.randn(4, 3, 32, 32), "ids": torch.randint(3, 32, (4, 6)),
             "caption_index": torch.arange(4), "neg_ids": torch.randint(3, 32, (8, 6))}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, info = contrastive_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert info == {"samples": 4}
    assert model(batch["pixels"], batch["ids"], batch["neg_ids"]).logits.shape == (4, 12)
    assert losses[-1] < losses[0] - 0.5, losses
