"""The optional fast decode step (omni.nn.fast_decode) equals the eager blocks: logits (fp32, 1e-5) and tokens."""

import pytest
import torch

from omni.generation.generate import generate
from omni.generation.sampling import SamplingConfig
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.mufun.config import Qwen3Config
from omni.mufun.qwen3 import Qwen3LM
from omni.nn import KVCache
from omni.nn.fast_decode import FastDecoder

TINY = ThinkerConfig(vocab_size=300, ctx_len=48, d_model=64, n_layers=2, n_heads=2, ffn_hidden=128)


def thinker(**changes) -> ThinkerLM:
    torch.manual_seed(0)
    return ThinkerLM(ThinkerConfig(**{**TINY.__dict__, **changes})).eval()


def qwen3_decoder(model: Qwen3LM) -> FastDecoder:
    """Qwen3 keeps separate q/k/v and gate/up weights, q/k-norm and grouped kv heads: the snapshot fuses them."""
    return FastDecoder(model.embed_tokens.weight, model.rope, model.layers, model.norm, model.lm_head.weight,
                       model.ctx_len)


def step_logits_agree(model, decoder: FastDecoder, vocab: int, steps: int = 6) -> None:
    """Prefill one cache per path, then feed the same ids: each fast step's logits equal the eager step's."""
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, vocab, (2, 9), generator=g)                      # (B, T)
    eager, fast = KVCache.for_model(model, 2), KVCache.for_model(model, 2)
    with torch.inference_mode():
        model(prompt, cache=eager), model(prompt, cache=fast)
        for _ in range(steps):
            ids = torch.randint(0, vocab, (2,), generator=g)                    # (B,)
            ref = model(ids[:, None], cache=eager)[:, -1]                       # (B, V)
            torch.testing.assert_close(decoder.step(ids, fast), ref, atol=1e-5, rtol=1e-5)
            assert fast.length == eager.length
        torch.testing.assert_close(fast.k[:, :, :, :fast.length], eager.k[:, :, :, :eager.length], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_kv_heads", [None, 1])
def test_thinker_fast_step_equals_eager(n_kv_heads):
    model = thinker(n_kv_heads=n_kv_heads)
    step_logits_agree(model, model.fast_decoder(), TINY.vocab_size)


def test_qwen3_fast_step_equals_eager():
    torch.manual_seed(0)
    model = Qwen3LM(Qwen3Config(vocab_size=200, hidden_size=48, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                                intermediate_size=96, max_position_embeddings=64)).eval()
    step_logits_agree(model, qwen3_decoder(model), 200)


@pytest.mark.parametrize("batch", [1, 3])
def test_generate_fast_gives_the_eager_tokens(batch):
    model = thinker()
    ids = torch.randint(3, TINY.vocab_size, (batch, 11), generator=torch.Generator().manual_seed(2))
    s = SamplingConfig(max_new_tokens=30)
    a = generate(model, ids=ids, sampling=s, return_logits=True)
    b = generate(model, ids=ids, sampling=s, return_logits=True, fast=True)
    assert torch.equal(a.tokens, b.tokens) and a.stop_reason == b.stop_reason
    for la, lb in zip(a.step_logits, b.step_logits):
        torch.testing.assert_close(lb, la, atol=1e-5, rtol=1e-5)


def test_generate_fast_samples_and_stops_like_eager():
    model = thinker()
    ids = torch.randint(3, TINY.vocab_size, (2, 5), generator=torch.Generator().manual_seed(3))
    s = SamplingConfig(temperature=1.0, top_k=50, max_new_tokens=60)          # runs into ctx_len 48
    a = generate(model, ids=ids, sampling=s, eos_id=7, generator=torch.Generator().manual_seed(4))
    b = generate(model, ids=ids, sampling=s, eos_id=7, generator=torch.Generator().manual_seed(4), fast=True)
    assert torch.equal(a.tokens, b.tokens) and a.stop_reason == b.stop_reason


def test_fast_decoder_refuses_what_it_does_not_do():
    model = thinker()
    with pytest.raises(ValueError, match="use_cache=False"):
        generate(model, ids=torch.ones(1, 3, dtype=torch.long), use_cache=False, fast=True)
    with pytest.raises(ValueError, match="fp32 only"):
        thinker().to(torch.bfloat16).fast_decoder()
    decoder, cache = model.fast_decoder(), KVCache.for_model(model, 1, max_len=2)
    cache.advance(2)
    with pytest.raises(ValueError, match="all filled"):
        decoder.step(torch.ones(1, dtype=torch.long), cache)
