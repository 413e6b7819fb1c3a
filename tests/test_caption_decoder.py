"""The vision stage's optional caption decoder (CoCa): shapes, causality, padding, the combined loss."""

import pytest
import torch

from omni.models.caption_decoder import CaptionDecoder, CaptionDecoderConfig
from omni.models.contrastive import ContrastiveConfig, ContrastiveModel, TextTowerConfig
from omni.models.vision import VisionConfig
from omni.nn.cross_entropy import IGNORE_INDEX
from omni.tokenizer import PAD_ID
from omni.training.contrastive import caption_loss, caption_targets, contrastive_loss


def tiny_config(caption_layers: int = 1) -> ContrastiveConfig:
    return ContrastiveConfig(vision=VisionConfig(image_size=32, patch_size=16, d_model=32, n_layers=1, n_heads=2,
                                                 ffn_hidden=64),
                             text=TextTowerConfig(vocab_size=32, ctx_len=8, d_model=24, n_layers=1, n_heads=2,
                                                  ffn_hidden=48),
                             embed_dim=16, caption=CaptionDecoderConfig(n_layers=caption_layers, n_heads=2,
                                                                        ffn_hidden=48))


def test_logits_predict_the_next_token_from_the_image_tokens_and_the_words_before():
    torch.manual_seed(0)
    dec = CaptionDecoder(CaptionDecoderConfig(n_layers=2, n_heads=2, ffn_hidden=32), vision_dim=20, d_model=16,
                         vocab_size=40, n_image_tokens=5, ctx_len=10)
    image, ids = torch.randn(3, 5, 20), torch.randint(3, 40, (3, 7))
    logits = dec(image, ids)
    assert logits.shape == (3, 6, 40)
    # causal: changing word 4 leaves the predictions of words 1..4 (positions 0..3) unchanged, not later ones
    changed = ids.clone()
    changed[:, 4] = (ids[:, 4] + 1) % 40
    later = dec(image, changed)
    torch.testing.assert_close(later[:, :4], logits[:, :4])
    assert not torch.allclose(later[:, 4:], logits[:, 4:])
    # every position sees the image
    assert not torch.allclose(dec(image + 1, ids)[:, 0], logits[:, 0])


def test_wrong_image_token_count_or_too_long_caption_is_named():
    dec = CaptionDecoder(CaptionDecoderConfig(n_layers=1, n_heads=2, ffn_hidden=32), 20, 16, 40, 5, 6)
    with pytest.raises(AssertionError, match="expects 5 image tokens, got 4"):
        dec(torch.randn(2, 4, 20), torch.randint(3, 40, (2, 4)))
    with pytest.raises(AssertionError, match="L ≤ 6"):
        dec(torch.randn(2, 5, 20), torch.randint(3, 40, (2, 7)))


def test_padding_is_no_target():
    ids = torch.tensor([[1, 7, 8, 2], [1, 9, 2, PAD_ID]])
    assert caption_targets(ids).tolist() == [[7, 8, 2], [9, 2, IGNORE_INDEX]]
    logits = torch.randn(2, 3, 12)
    ref = torch.nn.functional.cross_entropy(torch.cat([logits[0], logits[1, :2]]), torch.tensor([7, 8, 2, 9, 2]))
    torch.testing.assert_close(caption_loss(logits, ids), ref)


def test_the_model_returns_caption_logits_only_with_a_decoder_and_the_config_round_trips():
    torch.manual_seed(0)
    px, ids = torch.randn(2, 3, 32, 32), torch.tensor([[1, 5, 6, 2], [1, 7, 2, PAD_ID]])
    out = ContrastiveModel(tiny_config(1))(px, ids)
    assert out.logits.shape == (2, 2) and out.caption_logits.shape == (2, 3, 32)
    assert ContrastiveModel(tiny_config(0))(px, ids).caption_logits is None
    from dataclasses import asdict
    assert ContrastiveConfig(**asdict(tiny_config(2))).caption == CaptionDecoderConfig(n_layers=2, n_heads=2,
                                                                                          ffn_hidden=48)


def test_caption_weight_without_a_decoder_is_an_error_naming_the_key():
    batch = {"pixels": torch.randn(2, 3, 32, 32), "ids": torch.randint(3, 32, (2, 5)), "caption_index": torch.arange(2)}
    with pytest.raises(ValueError, match="caption.n_layers"):
        contrastive_loss(ContrastiveModel(tiny_config(0)), batch, caption_weight=1.0)


def test_a_tiny_captioner_learns_which_word_goes_with_which_picture():
    # two pictures (bright left half / bright right half), each with its own second word
    torch.manual_seed(0)
    model = ContrastiveModel(tiny_config(1))
    left, right = torch.zeros(3, 32, 32), torch.zeros(3, 32, 32)
    left[:, :, :16], right[:, :, 16:] = 2.0, 2.0
    batch = {"pixels": torch.stack([left, right] * 4), "ids": torch.tensor([[1, 5, 10, 2], [1, 5, 11, 2]] * 4),
             "caption_index": torch.tensor([0, 1] * 4)}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss, info = contrastive_loss(model, batch, caption_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert set(info) == {"samples", "caption_loss"}
    with torch.no_grad():
        words = model(batch["pixels"], batch["ids"]).caption_logits[:, 1].argmax(-1)   # the word after "5"
    assert words.tolist() == [10, 11] * 4


def test_caption_accuracy_counts_each_word_group_apart():
    from omni.training.contrastive import caption_accuracy

    class Fixed(torch.nn.Module):              # predicts 5 everywhere: right on every 5, wrong elsewhere
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def forward(self, pixels, ids):
            logits = torch.zeros(ids.shape[0], ids.shape[1] - 1, 10)
            logits[..., 5] = 1.0
            return type("Out", (), {"caption_logits": logits})

    class Pairs(list):
        pass

    pairs = Pairs([{"pixels": torch.zeros(3, 4, 4), "ids": torch.tensor([1, 5, 6, 5, 2]), "caption_index": torch.tensor(0)},
                   {"pixels": torch.zeros(3, 4, 4), "ids": torch.tensor([1, 6, 2]), "caption_index": torch.tensor(1)}])
    acc = caption_accuracy(Fixed(), pairs, batch_size=1, word_groups={"five": {5}, "six": {6}, "none": {9}})
    assert acc == {"all": pytest.approx(2 / 6), "five": 1.0, "six": 0.0}     # empty groups are left out
