"""The shared blocks: RoPE, RMSNorm, attention masks with a cache, the tracer."""

import pytest
import torch

from omni import trace
from omni.nn import Attention, KVCache, RMSNorm, RotaryEmbedding, apply_rope


def test_rope_rotation_keeps_norms_and_depends_on_distance_only():
    rope = RotaryEmbedding(64)
    q, k = torch.randn(1, 1, 1, 64), torch.randn(1, 1, 1, 64)

    def score(pq, pk):
        cq, sq = rope(pq, 1)
        ck, sk = rope(pk, 1)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()

    cos, sin = rope(5, 1)
    torch.testing.assert_close(apply_rope(q, cos, sin).norm(), q.norm())
    torch.testing.assert_close(score(3, 1), score(10, 8), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(score(3, 1), score(3, 2))


def test_rope_table_grows_and_matches_direct_formula():
    rope = RotaryEmbedding(8, theta=100.0)
    cos, sin = rope(1000, 3)          # beyond the initial table
    pos = torch.arange(1000, 1003, dtype=torch.float32)[:, None]
    inv = 1.0 / 100.0 ** (torch.arange(0, 8, 2).float() / 8)
    ang = torch.cat([pos * inv, pos * inv], dim=-1)
    torch.testing.assert_close(cos, ang.cos())
    torch.testing.assert_close(sin, torch.cat([-ang.sin()[:, :4], ang.sin()[:, 4:]], dim=-1))   # signed


def test_apply_rope_equals_the_rotate_half_formula():
    rope = RotaryEmbedding(8)
    x = torch.randn(2, 3, 5, 8)
    cos, sin = rope(7, 5)
    plain_sin = torch.cat([-sin[:, :4], sin[:, 4:]], dim=-1)
    rotate_half = torch.cat([-x[..., 4:], x[..., :4]], dim=-1)
    torch.testing.assert_close(apply_rope(x, cos, sin), x * cos + rotate_half * plain_sin)


def test_rmsnorm_computes_in_fp32():
    n = RMSNorm(16)
    x = torch.randn(2, 3, 16, dtype=torch.bfloat16) * 100
    ref = x.float() / x.float().pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    torch.testing.assert_close(n(x).float(), ref.to(torch.bfloat16).float())


def test_attention_with_cache_matches_full_for_every_split():
    torch.manual_seed(0)
    att = Attention(32, 4, n_kv_heads=2, qk_norm=True).eval()
    rope = RotaryEmbedding(8)
    x = torch.randn(2, 10, 32)
    full = att(x, rope=rope(0, 10))
    for split in (1, 4, 9):
        cache = KVCache(1, 2, 2, 8, 16)
        a = att(x[:, :split], rope=rope(0, split), cache=cache)
        cache.advance(split)
        b = att(x[:, split:], rope=rope(split, 10 - split), cache=cache)
        torch.testing.assert_close(torch.cat([a, b], 1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_batch_mismatch_is_named():
    cache = KVCache(1, 2, 2, 8, 16)
    with pytest.raises(ValueError, match="batch 2, got batch 3"):
        cache.update(0, torch.zeros(3, 2, 1, 8), torch.zeros(3, 2, 1, 8))


def test_tracer_records_only_while_active_and_names_missing():
    x = torch.zeros(2, 3)
    assert trace.record("x", x) is x            # no tracer: a no-op
    with trace.Tracer() as tr:
        with trace.stage("s"):
            trace.record("x", x, "desc")
        trace.mute()
        trace.record("hidden", x)
        trace.record_always("kept", (4,))
        trace.mute(False)
    assert [(r.stage, r.name, r.shape, r.numel, r.bf16_bytes) for r in tr.records] == [
        ("s", "x", (2, 3), 6, 12), ("main", "kept", (4,), 4, 8)]
    with pytest.raises(KeyError, match="'nope' recorded 0 times"):
        tr.shape("nope")
    assert "| s | 1 | x | desc | (2, 3) | 6 | 12 B |" in tr.table()


def test_trace_stage_on_a_function_ends_with_it_and_restores_the_stage_and_the_muting():
    x = torch.zeros(2)

    @trace.stage("inner")
    def f(x):
        trace.mute(False)        # lifts only a mute made inside this stage, never the caller's
        trace.record("in", x)
        trace.mute()             # ends with the stage
        return x

    assert f(x) is x             # no tracer: the plain function
    with trace.Tracer() as tr:
        f(x)
        trace.record("after", x)
        trace.record("staged", x, stage="s")          # one record in a stage of its own
        trace.mute()
        f(x)                                          # muted by the caller: "in" is dropped
        trace.record_always("kept", (1,))
        trace.mute(False)
        trace.record("end", x)
    assert [(r.stage, r.name) for r in tr.records] == [
        ("inner", "in"), ("main", "after"), ("s", "staged"), ("main", "kept"), ("main", "end")]


def test_linear_cross_entropy_matches_plain_cross_entropy_value_and_gradients():
    from omni.nn.cross_entropy import IGNORE_INDEX, linear_cross_entropy

    torch.manual_seed(0)
    h = torch.randn(300, 32, requires_grad=True)                 # 300 rows: chunks of 64 leave a ragged tail
    w = (0.3 * torch.randn(50, 32)).requires_grad_()
    targets = torch.randint(0, 50, (300,))
    targets[::7] = IGNORE_INDEX
    ref = torch.nn.functional.cross_entropy(h @ w.t(), targets)
    ref.backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    loss = linear_cross_entropy(h, w, targets, chunk=64)
    (3 * loss).backward()                                          # an upstream gradient other than 1
    torch.testing.assert_close(loss, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(h.grad, 3 * gh, atol=1e-6, rtol=0)
    torch.testing.assert_close(w.grad, 3 * gw, atol=1e-6, rtol=0)


def test_next_token_loss_is_the_cross_entropy_of_the_thinkers_logits_value_and_gradients():
    from omni.models.thinker import ThinkerConfig, ThinkerLM
    from omni.training.lm import NextTokenLoss

    torch.manual_seed(0)
    model = ThinkerLM(ThinkerConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, ctx_len=16))
    ids = torch.randint(0, 97, (3, 13))
    logits = model(ids[:, :-1])                                   # forward: always logits (B, T, V)
    assert logits.shape == (3, 12, 97)
    ref = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
    ref.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    loss = NextTokenLoss(model)(ids[:, :-1], ids[:, 1:])
    loss.backward()
    torch.testing.assert_close(loss, ref, atol=1e-6, rtol=0)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], atol=1e-6, rtol=0, msg=lambda m: f"grad of {n}: {m}")
