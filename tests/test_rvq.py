"""RVQ: Part 6's encode shape, exact decode of codebook vectors, and codec training on a toy set;
the conv codec option: the same shapes, identity at initialisation, its context, its loss."""

import pytest
import torch

from omni.models.rvq import RVQ, CodecConfig, code_counts, kmeans_init, perplexity, reseed_dead_codes


def toy_frames(n: int = 1024, seed: int = 0) -> torch.Tensor:
    """Mel-like frames around 16 cluster centres (log-mel range), (n, 128)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(16, 128, generator=g) * 2 - 5
    idx = torch.randint(16, (n,), generator=g)
    return centres[idx] + 0.3 * torch.randn(n, 128, generator=g)


def test_part6_encode_decode_shapes():
    rvq = RVQ(CodecConfig())
    mel = torch.randn(2, 50, 128)
    codes = rvq.encode(mel)
    assert codes.shape == (2, 50, 2) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < 128
    assert rvq.decode(codes).shape == (2, 50, 128)
    assert rvq.decode(torch.zeros(1, 301, 2, dtype=torch.long))[0].shape == (301, 128)   # Part 5


def test_codebook_vectors_round_trip_exactly():
    torch.manual_seed(0)
    rvq = RVQ(CodecConfig())
    with torch.no_grad():                      # a trained RVQ's shape: coarse base, small residual
        rvq.codebooks[0] *= 10
        rvq.codebooks[1] *= 0.1
    codes = torch.stack([torch.randint(128, (3, 40)), torch.randint(128, (3, 40))], dim=-1)   # (3, 40, 2)
    x = rvq.decode(codes)
    assert torch.equal(rvq.encode(x), codes)
    assert torch.equal(rvq.decode(rvq.encode(x)), x)                   # bit for bit


def test_decode_rejects_bad_codes():
    rvq = RVQ(CodecConfig())
    with pytest.raises(ValueError, match="outside the codebook"):
        rvq.decode(torch.full((1, 2, 2), 128))
    with pytest.raises(ValueError, match=r"\(B, T, 2\)"):
        rvq.decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T, 128\)"):
        rvq.encode(torch.zeros(2, 5, 64))


def test_kmeans_init_beats_sample_init_and_training_reduces_loss():
    frames = toy_frames()
    batch = frames.reshape(8, 128, 128)                                  # (B, T, D)
    g = torch.Generator().manual_seed(0)
    sampled = RVQ(CodecConfig())
    with torch.no_grad():                                               # "sample init": random frames
        sampled.codebooks[0] = frames[torch.randperm(1024, generator=g)[:128]]
        sampled.codebooks[1] = 0.1 * torch.randn(128, 128, generator=g)
    kmeans = RVQ(CodecConfig())
    kmeans_init(kmeans, frames, n_iter=5, generator=g)
    l_sampled, m_sampled = sampled.loss(batch)
    l_kmeans, m_kmeans = kmeans.loss(batch)
    assert m_kmeans["loss"] < m_sampled["loss"]
    assert m_kmeans["snr_db"] > m_sampled["snr_db"]

    opt = torch.optim.Adam(sampled.parameters(), lr=0.05)
    first = None
    for _ in range(8):
        loss, metrics = sampled.loss(batch)
        first = first if first is not None else metrics
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, last = sampled.loss(batch)
    assert last["loss"] < first["loss"]
    assert last["mel_l1"] < first["mel_l1"]
    for key in ("codebook_loss", "commitment_loss", "snr_db", "usage_0", "usage_1", "perplexity_0", "perplexity_1"):
        assert key in last


def test_straight_through_gradient_reaches_input():
    rvq = RVQ(CodecConfig(dim=8, codebook_size=4))
    x = torch.randn(1, 3, 8, requires_grad=True)
    q = rvq.quantize(x)
    q.quantized.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))


def test_usage_perplexity_and_dead_code_reseeding():
    counts = code_counts(torch.tensor([[[0, 1], [0, 1], [2, 1]]]), 4)
    assert counts.tolist() == [[2, 0, 1, 0], [0, 3, 0, 0]]
    assert abs(perplexity(torch.tensor([5, 5, 5, 5])) - 4.0) < 1e-5
    assert abs(perplexity(torch.tensor([7, 0, 0, 0])) - 1.0) < 1e-5

    frames = toy_frames(512)
    rvq = RVQ(CodecConfig())
    with torch.no_grad():
        rvq.codebooks[0] = 100.0                                         # far from every frame ...
        rvq.codebooks[0, 0] = frames[0]                                  # ... except entry 0
    used = code_counts(rvq.encode(frames[None]), 128)
    assert int((used[0] > 0).sum()) == 1
    moved = reseed_dead_codes(rvq, frames, used, generator=torch.Generator().manual_seed(0))
    assert moved[0] == 127
    after = code_counts(rvq.encode(frames[None]), 128)
    assert int((after[0] > 0).sum()) > 8


def test_kmeans_needs_enough_frames():
    with pytest.raises(ValueError, match="at least codebook_size=128"):
        kmeans_init(RVQ(CodecConfig()), torch.randn(50, 128))


# -- the conv codec (CodecConfig.encoder = "conv") -----------------------------

CONV = dict(encoder="conv", hidden=32, kernel_size=5, n_layers=2)


def test_conv_codec_keeps_the_part5_and_part6_shapes():
    rvq = RVQ(CodecConfig(**CONV))
    codes = rvq.encode(torch.randn(2, 50, 128) - 5)                      # Part 6's batch
    assert codes.shape == (2, 50, 2) and codes.dtype == torch.long
    assert rvq.decode(codes).shape == (2, 50, 128)
    assert rvq.decode(torch.zeros(1, 301, 2, dtype=torch.long))[0].shape == (301, 128)   # Part 5
    assert rvq.decode(codes[:, :1]).shape == (2, 1, 128)                 # one frame still decodes (edges repeat)


def test_identity_codec_has_only_codebooks_and_untrained_conv_starts_as_identity():
    assert list(RVQ(CodecConfig()).state_dict()) == ["codebooks"]       # the seed's exports load strictly
    torch.manual_seed(0)
    identity, conv = RVQ(CodecConfig()), RVQ(CodecConfig(**CONV))
    with torch.no_grad():
        conv.codebooks.copy_(identity.codebooks)
    mel = torch.randn(2, 20, 128)
    assert torch.equal(conv.latents(mel), mel)                           # zero-initialised residual branches
    codes = identity.encode(mel)
    assert torch.equal(conv.encode(mel), codes)
    torch.testing.assert_close(conv.decode(codes), identity.decode(codes))


def test_conv_codec_context_is_its_receptive_field():
    """Encoder: n_layers blocks of kernel_size frames → frame t sees t ± n_layers · (kernel_size // 2)."""
    torch.manual_seed(0)
    rvq = RVQ(CodecConfig(**CONV))
    for p in rvq.encoder.parameters():
        torch.nn.init.normal_(p, std=0.1)                               # as if trained: non-zero branches
    mel = torch.randn(1, 30, 128)
    poked = mel.clone()
    poked[0, 15] += 1.0
    moved = (rvq.latents(poked) - rvq.latents(mel)).abs().amax(-1)[0] > 0   # (T,)
    assert moved.nonzero().flatten().tolist() == list(range(15 - 4, 15 + 5))


def test_conv_codec_loss_has_reconstruction_and_falls():
    g = torch.Generator().manual_seed(0)
    batch = toy_frames(1024).reshape(16, 64, 128)                        # (B, T, D) sequences
    rvq = RVQ(CodecConfig(**CONV))
    kmeans_init(rvq, rvq.latents(batch).detach(), n_iter=0, generator=g)   # sampled frames, as the smoke preset
    opt = torch.optim.Adam(rvq.parameters(), lr=0.01)
    _, first = rvq.loss(batch)
    for _ in range(15):
        loss, _ = rvq.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, last = rvq.loss(batch)
    assert "reconstruction_loss" in first and "reconstruction_loss" not in RVQ(CodecConfig()).loss(batch)[1]
    assert last["loss"] < 0.9 * first["loss"]
    assert last["reconstruction_loss"] < 0.9 * first["reconstruction_loss"] and last["mel_l1"] < first["mel_l1"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in rvq.encoder.parameters())


def test_codec_config_rejects_unknown_encoders_and_even_kernels():
    with pytest.raises(AssertionError, match="encoder must be one of"):
        CodecConfig(encoder="transformer")
    with pytest.raises(AssertionError, match="kernel_size must be odd"):
        CodecConfig(encoder="conv", kernel_size=4)
