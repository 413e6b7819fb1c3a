"""Numerical parity with ``transformers`` on small random configurations (fp32, within 1e-4).

The reference models are saved with ``save_pretrained`` and loaded back through
OUR loader (omni.mufun.loading), so these tests also check the key mapping.
"""

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from omni.audio.whisper_mel import whisper_log_mel  # noqa: E402
from omni.mufun.loading import load_qwen3, load_whisper  # noqa: E402

TOL = 1e-4


def _randomize(model: torch.nn.Module, seed: int, std: float = 0.2) -> None:
    """Every parameter random (biases and norm weights included), so no mapping error can hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def _tiny_whisper_config():
    from transformers import WhisperConfig

    return WhisperConfig(num_mel_bins=16, d_model=32, encoder_layers=3, encoder_attention_heads=2,
                         encoder_ffn_dim=64, max_source_positions=20, decoder_layers=1, decoder_attention_heads=2,
                         decoder_ffn_dim=64, vocab_size=100, max_target_positions=16, pad_token_id=0,
                         bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)


@pytest.mark.parametrize("layout", ["encoder", "full"])
def test_whisper_encoder_hidden_states_match_transformers(tmp_path, layout):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFEncoder
    from transformers.models.whisper.modeling_whisper import WhisperForConditionalGeneration

    torch.manual_seed(0)
    cfg = _tiny_whisper_config()
    if layout == "encoder":          # bare keys: conv1.weight, layers.0.fc1.weight, ...
        ref = HFEncoder(cfg).eval()
        _randomize(ref, 1)
        ref.save_pretrained(tmp_path)
    else:                            # model.encoder.* next to a decoder we do not load
        full = WhisperForConditionalGeneration(cfg).eval()
        _randomize(full, 1)
        full.save_pretrained(tmp_path)
        ref = full.get_encoder()
    ours = load_whisper(tmp_path).eval()
    assert ours.cfg.n_positions == 20 and ours.cfg.conv2_stride == 2 and ours.cfg.n_frames == 40

    mel = torch.randn(2, 16, 40)
    with torch.no_grad():
        expected = ref(mel, output_hidden_states=True).hidden_states
        got = ours(mel)
    assert len(got) == len(expected) == 4
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape == (2, 20, 32), f"hidden state {i}: {a.shape} vs {b.shape}"
        err = (a - b).abs().max().item()
        assert err < TOL, f"hidden state {i} differs from transformers by {err}"
    # the last index is after the final LayerNorm, as HF's last_hidden_state
    assert torch.allclose(got[-1], ref(mel).last_hidden_state, atol=TOL)


@pytest.mark.parametrize("tied", [False, True])
def test_qwen3_logits_match_transformers(tmp_path, tied):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=120, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, intermediate_size=96, max_position_embeddings=64,
                      rms_norm_eps=1e-6, tie_word_embeddings=tied,
                      rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0})
    ref = Qwen3ForCausalLM(cfg).eval()
    _randomize(ref, 2, std=0.3)
    ref.save_pretrained(tmp_path)
    ours = load_qwen3(tmp_path).eval()
    assert ours.cfg.rope_theta == 1_000_000.0 and ours.cfg.tie_word_embeddings == tied
    assert (ours.lm_head.weight is ours.embed_tokens.weight) == tied

    ids = torch.randint(0, 120, (2, 11), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = ref(input_ids=ids).logits
        got = ours(ids=ids)
    err = (got - expected).abs().max().item()
    assert err < TOL, f"logits differ from transformers by {err}"

    # the loss with -100 labels matches HF's too
    labels = ids.clone()
    labels[:, :4] = -100
    with torch.no_grad():
        _, loss = ours.logits_and_loss(labels, ids=ids)
        ref_loss = ref(input_ids=ids, labels=labels).loss
    assert abs(loss.item() - ref_loss.item()) < TOL


@pytest.mark.parametrize("n_mels,seconds", [(128, 7.3), (80, 30.0), (128, 31.0)])
def test_whisper_log_mel_matches_feature_extractor(n_mels, seconds):
    from transformers import WhisperFeatureExtractor

    g = torch.Generator().manual_seed(int(seconds * 10) + n_mels)
    T = int(seconds * 16000)
    t = torch.arange(T) / 16000
    wave = (0.3 * torch.sin(2 * np.pi * 440 * t) + 0.05 * torch.randn(T, generator=g)).float()
    fe = WhisperFeatureExtractor(feature_size=n_mels)
    expected = fe(wave.numpy(), sampling_rate=16000, return_tensors="np").input_features[0]
    got = whisper_log_mel(wave, n_mels).numpy()
    assert got.shape == expected.shape == (n_mels, 3000)
    err = np.abs(got - expected).max()
    assert err < TOL, f"log-mel differs from WhisperFeatureExtractor by {err}"
