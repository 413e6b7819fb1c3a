"""Seed 004, Part 1: every documented shape of the text-only pipeline, and the
ThinkerLM's input checks."""

import pytest
import torch

from omni import trace
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.dry_run.text import SEED_EXAMPLE_IDS, trace_text


@pytest.fixture(scope="module")
def seed_trace():
    return trace_text()


def test_config_defaults_match_seed():
    c = ThinkerConfig()
    assert (c.d_model, c.n_layers, c.n_heads, c.head_dim, c.vocab_size, c.ctx_len) == (256, 4, 4, 64, 5000, 512)
    assert c.rope_theta == 10000.0


def test_part1_shapes(seed_trace):
    tr = seed_trace
    assert tr.shape("text.ids") == (1, 6)
    assert tr.shapes("thinker.embed")[0] == (1, 6, 256)
    for layer in range(4):
        for t in ("q", "k", "v"):
            assert tr.shapes(f"thinker.layer{layer}.attn.{t}")[0] == (1, 4, 6, 64)
        assert tr.shapes(f"thinker.layer{layer}.attn.scores")[0] == (1, 4, 6, 6)
        assert tr.shapes(f"thinker.layer{layer}.out")[0] == (1, 6, 256)
    assert tr.shapes("thinker.logits")[0] == (1, 6, 5000)
    assert tr.shape("text.last_logits") == (5000,)
    assert tr.shape("text.next_id") == (1,)


def test_part1_autoregressive_growth_6_to_70(seed_trace):
    seq = seed_trace.shapes("generate.sequence")
    assert [s[1] for s in seq] == list(range(7, 71))
    assert seed_trace.shape("generate.prefill") == (1, 6)
    # the first decode step runs one new token against 7 cached positions
    assert seed_trace.shapes("thinker.layer0.attn.q")[1] == (1, 4, 1, 64)
    assert seed_trace.shapes("thinker.layer0.attn.k")[1] == (1, 4, 7, 64)
    assert seed_trace.shapes("thinker.layer0.attn.scores")[1] == (1, 4, 1, 7)


def test_forward_ids_and_embeds_agree():
    torch.manual_seed(0)
    m = ThinkerLM(ThinkerConfig(n_layers=2)).eval()
    ids = torch.tensor([SEED_EXAMPLE_IDS])
    a = m(ids)
    b = m(embeds=m.tok_emb(ids))
    assert a.shape == (1, 6, 5000)
    torch.testing.assert_close(a, b)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return ThinkerLM(ThinkerConfig(n_layers=1, ctx_len=16)).eval()


def test_rejects_both_or_neither(small):
    ids = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="exactly one"):
        small(ids, embeds=small.tok_emb(ids))
    with pytest.raises(ValueError, match="exactly one"):
        small()


def test_rejects_out_of_vocab_ids(small):
    with pytest.raises(ValueError, match="5000 is outside the vocabulary"):
        small(torch.tensor([[1, 5000]]))
    with pytest.raises(ValueError, match="-1 is outside"):
        small(torch.tensor([[-1, 2]]))


def test_rejects_prompt_longer_than_ctx_len(small):
    with pytest.raises(ValueError, match="ctx_len=16"):
        small(torch.ones(1, 17, dtype=torch.long))


def test_rejects_wrong_embedding_width(small):
    with pytest.raises(ValueError, match=r"\(B, T, 256\)"):
        small(embeds=torch.zeros(1, 3, 128))


def test_nonfinite_logits_raise_with_counts(small):
    bad = torch.zeros(1, 2, 256)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(RuntimeError, match=r"NaN and \d+ Inf"):
        small(embeds=bad)


def test_grouped_query_attention_shapes():
    m = ThinkerLM(ThinkerConfig(n_layers=1, n_kv_heads=2))
    with trace.Tracer() as tr:
        m(torch.ones(1, 5, dtype=torch.long))
    assert tr.shape("thinker.layer0.attn.q") == (1, 4, 5, 64)
    assert tr.shape("thinker.layer0.attn.k") == (1, 2, 5, 64)
    qkv = m.blocks[0].self_attn.qkv_proj.weight
    assert qkv.shape == ((4 + 2 * 2) * 64, 256)          # 4 query heads, 2 key heads, 2 value heads


def test_config_invariants_are_checked():
    with pytest.raises(AssertionError, match="divisible"):
        ThinkerConfig(d_model=250, n_heads=4)
    with pytest.raises(TypeError):
        ThinkerConfig(**{"d_model": 256, "no_such_key": 1})


def test_meta_device_trace_allocates_nothing():
    with torch.device("meta"):
        m = ThinkerLM(ThinkerConfig())
        ids = torch.zeros(1, 6, dtype=torch.long)
    with trace.Tracer() as tr:
        logits = m(ids)
    assert logits.device.type == "meta" and logits.shape == (1, 6, 5000)
    assert tr.shape("thinker.logits") == (1, 6, 5000)
