"""TalkerTiny: Part 6's shapes and loss, text conditioning, the stop rule, cached = uncached decoding."""

import pytest
import torch

from omni.models.talker import TalkerConfig, TalkerTiny, shift_codes, talker_loss
from omni.dry_run.tts import SEED_TTS_IDS
from omni.pipelines.tts import generate_codes


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_cfg(**kw) -> TalkerConfig:
    return TalkerConfig(**{"d_model": 64, "n_layers": 2, "n_heads": 2, "ffn_hidden": 128, "text_vocab_size": 1000,
                           "max_text_tokens": 16, **kw})


def test_part5_frame_cap():
    cfg = TalkerConfig()
    assert cfg.frame_cap(10) == 300
    assert cfg.frame_cap(1) == 50 and cfg.frame_cap(100) == 1000


def test_part6_shapes_and_shift():
    torch.manual_seed(0)
    talker = TalkerTiny(tiny_cfg())
    codes = torch.randint(128, (2, 50, 2))
    prev = shift_codes(codes)
    assert prev.shape == (2, 50, 2)
    assert torch.equal(prev[:, 0], torch.zeros(2, 2, dtype=torch.long))
    assert torch.equal(prev[:, 1:], codes[:, :-1])
    out = talker(prev, text_ids=torch.tensor([SEED_TTS_IDS[:5]] * 2))
    assert out.base.shape == (2, 50, 128) and out.residual.shape == (2, 50, 128) and out.stop.shape == (2, 50)
    base, res, _ = out
    assert base.reshape(-1, 128).shape == (100, 128)


def test_loss_matches_part6_formula_and_trains():
    torch.manual_seed(0)
    talker = TalkerTiny(tiny_cfg(stop_weight=0.0))
    text = torch.randint(4, 1000, (2, 6))
    codes = torch.randint(128, (2, 20, 2))
    loss, metrics = talker_loss(talker, text, codes)
    out = talker(shift_codes(codes), text_ids=text)
    expected = (torch.nn.functional.cross_entropy(out.base.reshape(-1, 128), codes[..., 0].reshape(-1)) +
                torch.nn.functional.cross_entropy(out.residual.reshape(-1, 128), codes[..., 1].reshape(-1)))
    torch.testing.assert_close(loss, expected)
    assert set(metrics) == {"loss", "ce_base", "ce_residual", "stop_bce"}
    opt = torch.optim.AdamW(talker.parameters(), lr=3e-3)
    first = float(loss.detach())
    for _ in range(10):
        loss, _ = talker_loss(talker, text, codes)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first


def test_padded_batch_loss_ignores_padding():
    torch.manual_seed(0)
    talker = TalkerTiny(tiny_cfg())
    codes = torch.randint(128, (2, 12, 2))
    text = torch.tensor([[0, 0, 7, 8], [5, 6, 7, 8]])                   # row 0 left-padded
    pad = text == 0
    lengths = torch.tensor([8, 12])
    loss_pad, _ = talker_loss(talker, text, codes, lengths=lengths, text_pad_mask=pad)
    # row 0 alone, unpadded, gives the same logits on its real frames (RoPE is relative)
    out_pad = talker(shift_codes(codes), text_ids=text, text_pad_mask=pad)
    out_one = talker(shift_codes(codes[:1]), text_ids=text[:1, 2:])
    torch.testing.assert_close(out_pad.base[0, :8], out_one.base[0, :8], atol=1e-4, rtol=1e-4)
    assert torch.isfinite(loss_pad)


def test_text_conditioning_changes_the_output():
    torch.manual_seed(0)
    talker = TalkerTiny(tiny_cfg())
    prev = torch.zeros(1, 4, 2, dtype=torch.long)
    a = talker(prev, text_ids=torch.tensor([[10, 11, 12]])).base
    b = talker(prev, text_ids=torch.tensor([[400, 500, 600]])).base
    assert not torch.allclose(a, b)


def test_cached_and_uncached_generation_agree():
    torch.manual_seed(0)
    talker = TalkerTiny(tiny_cfg()).eval()
    text = torch.tensor([SEED_TTS_IDS[:4]])
    cached = generate_codes(talker, text, max_frames=40, ignore_stop=True, use_cache=True)
    uncached = generate_codes(talker, text, max_frames=40, ignore_stop=True, use_cache=False)
    assert cached.codes.shape == (1, 41, 2)
    assert torch.equal(cached.codes, uncached.codes)
    assert torch.equal(cached.codes[:, 0], torch.zeros(1, 2, dtype=torch.long))


def stepwise_logits(talker, text, codes):
    """Cached decoding fed the given frames one at a time: logits (base, residual, stop) per frame."""
    from omni.nn.kv_cache import KVCache

    cache = KVCache.for_model(talker, 1)
    outs = [talker(codes[:, :1], text_ids=text, cache=cache)]                  # prefill: text + start frame
    outs += [talker(codes[:, t:t + 1], cache=cache) for t in range(1, codes.shape[1])]
    return [torch.cat([o[i] for o in outs], dim=1) for i in range(3)]


@torch.no_grad()
def test_cached_logits_equal_uncached_base_residual_and_stop():
    torch.manual_seed(0)
    talker = TalkerTiny(tiny_cfg()).eval()
    text = torch.tensor([SEED_TTS_IDS[:4]])
    codes = torch.randint(0, talker.cfg.codebook_size, (1, 30, 2))
    codes[:, 0] = 0                                                            # the start frame
    full = talker(codes, text_ids=text)
    middle = full.stop.flatten().sort().values[14:16]
    talker.stop_head.bias -= middle.mean()                                     # the stop head fires on half
    full = talker(codes, text_ids=text)
    assert (full.stop > 0).any() and (full.stop < 0).any()
    for name, a, b in zip(("base", "residual", "stop"), full, stepwise_logits(talker, text, codes)):
        assert a.shape == b.shape, name
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0, msg=lambda m: f"{name} logits: {m}")
    assert torch.equal(full.stop > 0, stepwise_logits(talker, text, codes)[2] > 0)


@torch.no_grad()
def test_cached_and_uncached_generation_stop_on_the_same_frame():
    torch.manual_seed(1)
    talker = TalkerTiny(tiny_cfg()).eval()
    text = torch.tensor([SEED_TTS_IDS[:4]])
    z = talker(generate_codes(talker, text, max_frames=40, ignore_stop=True).codes[:, :-1], text_ids=text).stop[0]
    # move the bias so the stop head first fires on frame s: the last frame whose logit beats all before it
    s = max(t for t in range(1, 40) if z[t] > z[:t].max())
    gap = float(z[s] - z[:s].max())
    assert 3 <= s < 39 and gap > 1e-3, (s, gap)                                 # a clear, mid-sequence stop
    talker.stop_head.bias -= (z[s] + z[:s].max()) / 2
    cached = generate_codes(talker, text, max_frames=40, use_cache=True)
    uncached = generate_codes(talker, text, max_frames=40, use_cache=False)
    assert cached.stop_reason == uncached.stop_reason == "stop"
    assert cached.codes.shape == (1, s + 2, 2) and torch.equal(cached.codes, uncached.codes)


@pytest.mark.parametrize("head,what", [("base_head", "Talker base logits"), ("res_head", "Talker residual logits")])
def test_non_finite_code_logits_are_caught_per_head(head, what):
    talker = TalkerTiny(tiny_cfg()).eval()
    with torch.no_grad():
        getattr(talker, head).weight[3, 0] = float("nan")
    with pytest.raises(RuntimeError, match=f"{what} are not finite: 1 NaN and 0 Inf"):
        talker(torch.zeros(1, 1, 2, dtype=torch.long), text_ids=torch.tensor([[5, 6]]))


def test_stop_rule_terminates_within_the_cap():
    cfg = tiny_cfg(min_frames=5, max_frames=60, frames_per_token=3)
    for seed in range(3):                                                # untrained Talkers, as they come
        torch.manual_seed(seed)
        talker = TalkerTiny(cfg).eval()
        text = torch.randint(4, 1000, (1, 4))
        out = generate_codes(talker, text)
        assert 2 <= out.codes.shape[1] <= cfg.frame_cap(4) + 1
    with torch.no_grad():
        talker.stop_head.bias.fill_(-50.0)                              # never wants to stop → the cap
    out = generate_codes(talker, text)
    assert out.stop_reason == "cap" and out.codes.shape == (1, 1 + cfg.frame_cap(4), 2)
    with torch.no_grad():
        talker.stop_head.bias.fill_(50.0)                               # stops after the first frame
    out = generate_codes(talker, text)
    assert out.stop_reason == "stop" and out.codes.shape == (1, 2, 2)


def test_empty_and_too_long_text_raise():
    talker = TalkerTiny(tiny_cfg())
    with pytest.raises(ValueError, match="empty text"):
        generate_codes(talker, torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="max_text_tokens=16"):
        generate_codes(talker, torch.ones(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="needs text_ids"):
        talker(torch.zeros(1, 1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        talker(torch.zeros(1, 1, 2, dtype=torch.long), text_ids=torch.tensor([[1000]]))
