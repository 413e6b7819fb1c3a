"""Cached vs uncached decoding, sampling rules and stopping."""

import pytest
import torch

from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.nn import KVCache
from omni.generation.generate import generate
from omni.generation.sampling import SamplingConfig, sample_next


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ThinkerLM(ThinkerConfig(n_layers=2, ctx_len=128)).eval()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cached_equals_uncached_at_every_step(model, seed):
    g = torch.Generator().manual_seed(seed)
    T = int(torch.randint(1, 40, (1,), generator=g))
    ids = torch.randint(0, 5000, (1, T), generator=g)
    s = SamplingConfig(max_new_tokens=24)
    a = generate(model, ids=ids, sampling=s, use_cache=True, return_logits=True)
    b = generate(model, ids=ids, sampling=s, use_cache=False, return_logits=True)
    assert torch.equal(a.tokens, b.tokens)
    assert len(a.step_logits) == len(b.step_logits) == 24
    for la, lb in zip(a.step_logits, b.step_logits):
        assert (la - lb).abs().max().item() < 1e-5


def test_chunked_prefill_matches_full_forward(model):
    ids = torch.randint(0, 5000, (2, 20), generator=torch.Generator().manual_seed(5))
    full = model(ids)
    cache = KVCache.for_model(model, batch_size=2)
    parts = [model(ids[:, :7], cache=cache), model(ids[:, 7:8], cache=cache), model(ids[:, 8:], cache=cache)]
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_stops_at_eos(model):
    ids = torch.randint(0, 5000, (1, 5), generator=torch.Generator().manual_seed(1))
    first = generate(model, ids=ids, sampling=SamplingConfig(max_new_tokens=8))
    eos = int(first.tokens[0, 2])   # make the third greedy token the "EOS"
    res = generate(model, ids=ids, sampling=SamplingConfig(max_new_tokens=8), eos_id=eos)
    assert res.stop_reason == "eos"
    assert res.tokens.shape[1] == int((first.tokens[0] == eos).nonzero()[0]) + 1


def test_stops_at_ctx_len(model):
    ids = torch.randint(0, 5000, (1, 120), generator=torch.Generator().manual_seed(2))
    res = generate(model, ids=ids, sampling=SamplingConfig(max_new_tokens=50))
    assert res.stop_reason == "ctx_len"
    assert 120 + res.tokens.shape[1] == 128


def test_cache_overflow_is_an_error(model):
    cache = KVCache.for_model(model, batch_size=1, max_len=4)
    with pytest.raises(ValueError, match="holds 4 positions"):
        model(torch.ones(1, 5, dtype=torch.long), cache=cache)


def test_top_k_only_samples_the_k_best():
    logits = torch.tensor([[0.0, 5.0, 4.0, 1.0, 3.0]])
    g = torch.Generator().manual_seed(0)
    seen = {int(sample_next(logits, SamplingConfig(temperature=1.0, top_k=2), g)) for _ in range(200)}
    assert seen == {1, 2}


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    g = torch.Generator().manual_seed(0)
    cfg = SamplingConfig(temperature=1.0, top_p=0.7)
    seen = {int(sample_next(probs.log(), cfg, g)) for _ in range(300)}
    assert seen == {0, 1}          # 0.5 < 0.7 needs the 0.3 too; 0.8 ≥ 0.7 stops there


def test_greedy_is_argmax_and_temperature_validated():
    logits = torch.randn(3, 50)
    assert torch.equal(sample_next(logits, SamplingConfig()), logits.argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)


def test_training_works_after_generation():
    """generate runs under inference_mode; tables it builds (RoPE) must still serve autograd."""
    torch.manual_seed(0)
    m = ThinkerLM(ThinkerConfig(n_layers=1, ctx_len=64))
    generate(m, ids=torch.ones(1, 60, dtype=torch.long), sampling=SamplingConfig(max_new_tokens=2))
    logits = m(torch.ones(2, 64, dtype=torch.long))
    logits.float().logsumexp(-1).mean().backward()
    assert m.tok_emb.weight.grad is not None
