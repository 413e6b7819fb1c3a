"""AudioEncoderTiny (seed 004, Part 3): every documented shape, the output-length
function CTC needs, and batches of different lengths under a key-padding mask."""

import pytest
import torch

from omni import trace
from omni.audio.tiny_mel import log_mel, log_mel_batch
from omni.models.audio_encoder import AudioEncoderConfig, AudioEncoderTiny, output_length
from omni.nn.positions import sinusoids


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return AudioEncoderTiny(AudioEncoderConfig()).eval()


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return AudioEncoderTiny(AudioEncoderConfig(n_layers=1, conv_channels=8, d_model=32, n_heads=2,
                                               ffn_hidden=64)).eval()


def test_config_defaults_match_seed():
    c = AudioEncoderConfig()
    assert (c.n_mels, c.conv_channels, c.d_model, c.n_layers) == (128, 64, 192, 4)
    assert (c.freq_out, c.flat_dim) == (32, 2048)
    with pytest.raises(TypeError):
        AudioEncoderConfig(**{"d_model": 192, "not_a_key": 1})
    with pytest.raises(AssertionError, match="not divisible"):
        AudioEncoderConfig(n_heads=5)


def test_part3_shape_chain_through_the_tracer(encoder):
    wave = torch.randn(16_000) * 0.1
    with trace.Tracer() as tr, torch.no_grad():
        out = encoder(log_mel(wave))
    assert tr.shape("audio.mel") == (1, 100, 128)
    assert tr.shape("audio.conv1") == (1, 64, 50, 64)
    assert tr.shape("audio.conv2") == (1, 64, 25, 32)
    assert tr.shape("audio.flat") == (1, 25, 2048)
    assert tr.shape("audio.proj") == (1, 25, 192)
    for i in range(4):
        assert tr.shape(f"audio.layer{i}.out") == (1, 25, 192)
        assert tr.shape(f"audio.layer{i}.attn.scores") == (1, 3, 25, 25)     # bidirectional: 25 × 25
    assert tr.shape("audio.out") == (1, 25, 192)
    assert out.shape == (1, 25, 192)


def test_part3_shapes_directly(encoder):
    mel = torch.randn(2, 100, 128)
    x = torch.nn.functional.gelu(encoder.conv1(mel[:, None]))
    assert mel[:, None].shape == (2, 1, 100, 128)
    assert x.shape == (2, 64, 50, 64)
    x = torch.nn.functional.gelu(encoder.conv2(x))
    assert x.shape == (2, 64, 25, 32)
    assert x.permute(0, 2, 1, 3).reshape(2, 25, -1).shape == (2, 25, 2048)
    assert encoder.proj.in_features == 2048 and encoder.proj.out_features == 192
    assert len(encoder.blocks) == 4 and not encoder.blocks[0].self_attn.causal
    with torch.no_grad():
        assert encoder(mel).shape == (2, 25, 192)


@pytest.mark.parametrize("n,expected", [(100, 25), (99, 25), (101, 26), (97, 25), (96, 24), (1, 1), (2, 1),
                                        (4, 1), (5, 2), (128, 32), (3000, 750)])
def test_output_length(n, expected):
    assert output_length(n) == expected
    assert output_length(torch.tensor([n])).tolist() == [expected]


def test_output_length_matches_the_real_encoder(small):
    lengths = [1, 2, 3, 7, 8, 9, 50, 63, 64, 65]
    with torch.no_grad():
        for n in lengths:
            assert small(torch.randn(1, n, 128)).shape[1] == output_length(n) == small.output_length(n)
    assert output_length(torch.tensor(lengths)).tolist() == [small(torch.randn(1, n, 128)).shape[1]
                                                             for n in lengths]


def test_output_length_rejects_bad_counts():
    with pytest.raises(ValueError, match="≥ 1"):
        output_length(0)
    with pytest.raises(ValueError, match="≥ 1"):
        output_length(torch.tensor([4, 0]))
    with pytest.raises(TypeError, match="integer"):
        output_length(torch.tensor([4.0]))


def test_padded_batch_equals_each_clip_alone(small):
    clips = [torch.randn(16_000) * 0.1, torch.randn(9_050) * 0.1, torch.randn(3_300) * 0.1]
    mel, lengths = log_mel_batch(clips)
    assert lengths.tolist() == [100, 56, 20]
    with torch.no_grad():
        out = small(mel, mel_lengths=lengths)
        out_lengths = output_length(lengths)
        assert out.shape == (3, 25, 32) and out_lengths.tolist() == [25, 14, 5]
        for i, c in enumerate(clips):
            alone = small(log_mel(c))
            assert alone.shape[1] == out_lengths[i]
            torch.testing.assert_close(out[i, : out_lengths[i]], alone[0], atol=1e-5, rtol=1e-5)
            assert torch.all(out[i, out_lengths[i]:] == 0)


def test_padding_content_cannot_leak(small):
    mel, lengths = torch.randn(2, 40, 128), torch.tensor([40, 23])
    noisy = mel.clone()
    noisy[1, 23:] = 1e3 * torch.randn(17, 128)
    with torch.no_grad():
        torch.testing.assert_close(small(mel, lengths), small(noisy, lengths))
        # without the mask the padding does leak: the check above is not vacuous
        assert not torch.allclose(small(mel)[1, :6], small(noisy)[1, :6])


def test_bad_inputs(small):
    with pytest.raises(AssertionError, match=r"expects mel \(B, T, 128\), got \(1, 100, 80\)"):
        small(torch.randn(1, 100, 80))
    with pytest.raises(AssertionError, match="got"):
        small(torch.randn(100, 128))
    with pytest.raises(ValueError, match=r"mel_lengths must lie in \[1, 10\]"):
        small(torch.randn(2, 10, 128), torch.tensor([10, 11]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        small(torch.randn(2, 10, 128), torch.tensor([10]))
    with pytest.raises(RuntimeError, match="AudioEncoderTiny outputs are not finite"):
        small(torch.full((1, 8, 128), float("nan")))


def test_sinusoids_are_whispers_table():
    table = sinusoids(25, 192)
    assert table.shape == (25, 192)
    torch.testing.assert_close(table[0], torch.cat([torch.zeros(96), torch.ones(96)]))
    assert torch.all(table.abs() <= 1)
