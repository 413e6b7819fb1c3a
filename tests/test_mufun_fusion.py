"""Fusion of text and audio embeddings at the <audio> markers."""

import pytest
import torch

from omni.mufun.fusion import (AUDIO_TOKEN_INDEX, FusionError, fuse, pad_batch, tokenize_with_audio,
                               training_example)

H = 4
A = AUDIO_TOKEN_INDEX


def embed(ids: torch.Tensor) -> torch.Tensor:
    """A recognisable fake embedding: every channel holds the token id."""
    return ids[..., None].float().expand(*ids.shape, H)


def audio(n: int, value: float) -> torch.Tensor:
    return torch.full((n, H), value)


def test_marker_is_replaced_in_place_and_labels_are_masked():
    ids = torch.tensor([10, 11, A, 12, 13])
    labels = torch.tensor([-100, -100, -100, 12, 13])
    out = fuse(ids, [audio(3, -1.0)], embed, labels=labels)
    assert out.embeds.shape == (7, H)
    assert out.embeds[:, 0].tolist() == [10, 11, -1, -1, -1, 12, 13]
    assert out.labels.tolist() == [-100, -100, -100, -100, -100, 12, 13]
    assert out.audio_spans == [(2, 5)] and out.n_text == 4


def test_several_audios_in_order_including_at_the_edges():
    ids = torch.tensor([A, 5, A, A, 6])
    out = fuse(ids, [audio(2, -1), audio(1, -2), audio(3, -3)], embed)
    assert out.embeds[:, 0].tolist() == [-1, -1, 5, -2, -3, -3, -3, 6]
    assert out.audio_spans == [(0, 2), (3, 4), (4, 7)]
    only_audio = fuse(torch.tensor([A]), [audio(2, -1)], embed)
    assert only_audio.embeds.shape == (2, H) and only_audio.n_text == 0


def test_marker_and_audio_counts_must_match():
    with pytest.raises(FusionError, match="2 <audio> marker\\(s\\) \\(id -200\\) but 1 audio\\(s\\)"):
        fuse(torch.tensor([1, A, 2, A]), [audio(2, 0)], embed)
    with pytest.raises(FusionError, match="0 <audio> marker\\(s\\) .* but 1 audio"):
        fuse(torch.tensor([1, 2]), [audio(2, 0)], embed)


def test_over_long_sequence_names_its_parts():
    ids = torch.tensor([1, A, 2, 3, A])
    with pytest.raises(FusionError, match="13 tokens exceeds max_seq_len=12: text 3 tokens \\+ "
                                          "audio 1 4 tokens \\+ audio 2 6 tokens"):
        fuse(ids, [audio(4, 0), audio(6, 0)], embed, max_len=12)
    assert fuse(ids, [audio(4, 0), audio(6, 0)], embed, max_len=13).embeds.shape == (13, H)


def test_tokenize_with_audio_puts_the_placeholder_between_encoded_pieces():
    encode = lambda s: [len(w) for w in s.split()]          # noqa: E731  (a stand-in tokenizer)
    assert tokenize_with_audio("Listen to <audio> and tell me the genre", encode) == [6, 2, A, 3, 4, 2, 3, 5]
    assert tokenize_with_audio("<audio>\nWhat genre?", encode) == [A, 4, 6]
    assert tokenize_with_audio("Compare <audio> and <audio>", encode) == [7, A, 3, A]


def test_pad_batch_right_pads_with_ignored_labels():
    a = fuse(torch.tensor([1, A]), [audio(2, -1)], embed, labels=torch.tensor([1, -100]))
    b = fuse(torch.tensor([4, 5]), [], embed, labels=torch.tensor([4, 5]))
    embeds, labels, lengths = pad_batch([a, b])
    assert embeds.shape == (2, 3, H) and lengths.tolist() == [3, 2]
    assert labels.tolist() == [[1, -100, -100], [4, 5, -100]]
    assert embeds[1, 2].abs().sum() == 0


def test_training_example_teaches_only_the_answer():
    ids, labels = training_example([7, A, 8], [20, 21, 2])
    assert ids.tolist() == [7, A, 8, 20, 21, 2]
    assert labels.tolist() == [-100, -100, -100, 20, 21, 2]
    out = fuse(ids, [audio(3, -1)], embed, labels=labels)
    assert out.labels.tolist() == [-100] * 5 + [20, 21, 2]
    with pytest.raises(FusionError, match="at least one answer token"):
        training_example([7], [])
