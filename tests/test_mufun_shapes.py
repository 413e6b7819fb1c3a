"""Every shape the MuFun documents (seeds 000–003) print, asserted under the ``as-documented`` preset,
and the real shapes under ``mufun``, all on the ``meta`` device (no weight memory).

Where a seed contradicts itself or MuFun's code, the test asserts what the code does
and names the erratum (docs/errata.md).
"""

import json

import pytest
import torch

from omni.audio.whisper_mel import N_FRAMES
from omni.mufun.audio import audio_token_count
from omni.mufun.config import mufun_config
from omni.dry_run.mufun import NEW_TOKENS, SEED_PROMPT_IDS, trace_mufun
from omni.mufun.fusion import AUDIO_TOKEN_INDEX, FusionError
from omni.mufun.model import MuFunModel
from omni.trace import Tracer, format_bytes

SECONDS = 180


@pytest.fixture(scope="module")
def documented():
    return trace_mufun(SECONDS, "as-documented")


@pytest.fixture(scope="module")
def real():
    return trace_mufun(SECONDS, "mufun")


@pytest.fixture(scope="module")
def documented_model():
    with torch.device("meta"):
        return MuFunModel(mufun_config("as-documented"))


def _numel(tr, name):
    return next(r.numel for r in tr.records if r.name == name)


def test_seed000_dimension_table_as_documented(documented):
    tr = documented
    # (trace name, seed 000 "Dimensions" without the batch dimension, seed "Total Numbers")
    rows = [
        ("audio.raw", (7_938_000, 2), 15_876_000),            # step 0: 3 min 44.1 kHz stereo
        ("audio.resampled", (2_880_000,), 2_880_000),         # 1.1
        ("audio.chunk", (480_000,), 480_000),                 # 1.2
        ("whisper.mel", (80, 3000), 240_000),                 # 2.1
        ("whisper.hidden.0", (3000, 1280), 3_840_000),        # 2.2
        ("whisper.hidden.7", (3000, 1280), 3_840_000),        # 2.3
        ("whisper.hidden.15", (3000, 1280), 3_840_000),       # 2.4
        ("whisper.hidden.32", (3000, 1280), 3_840_000),       # 2.5
        ("features.pooled", (4, 600, 1280), 3_072_000),       # 2.6: [600, 1280] × 4
        ("features.concat", (600, 5120), 3_072_000),          # 2.7
        ("features.all_chunks", (3600, 5120), 18_432_000),    # 2.8
        ("connector.linear1", (3600, 10240), 36_864_000),     # 3.1
        ("connector.gelu", (3600, 10240), 36_864_000),        # 3.2
        ("connector.linear2", (3600, 3584), 12_902_400),      # 3.3
        ("fusion.ids", (8,), 8),                              # 4.1: 8 tokens, the marker included
    ]
    for name, shape, numbers in rows:
        got = tuple(s for s in tr.shape(name) if s != 1 or len(shape) == len(tr.shape(name)))
        assert got == shape, f"{name}: {tr.shape(name)} vs seed {shape}"
        assert _numel(tr, name) == numbers, name
    assert tr.shape("fusion.ids") == (8,)
    # 4.2/4.3/5.x: the seed says [8, 3584] and 3608 tokens, but "and tell me the genre" is 5 tokens
    # and the marker is not embedded: 2 + 3600 + 5 = 3607 (seed 002 counts the same way: 2 + 600 + 5 = 607).
    assert tr.shape("fusion.text_embeds") == (7, 3584)
    assert tr.shape("fusion.sequence") == (3607, 3584)
    assert tr.shape("llm.hidden") == (1, 3607, 3584)
    assert tr.shape("llm.logits") == (1, 3607, 151_000)
    assert tr.shape("generate.tokens") == (1, NEW_TOKENS)         # step 6 (~15 in the seed): decoded with the cache


def test_seed000_memory_column(documented):
    """The seed's "Memory (BF16)" column is numbers × 2 bytes in binary units (~35 MB for 18,432,000)."""
    seed = {"audio.raw": "30.28 MB", "audio.resampled": "5.49 MB", "audio.chunk": "937.50 KB",
            "whisper.mel": "468.75 KB", "whisper.hidden.0": "7.32 MB", "features.concat": "5.86 MB",
            "features.all_chunks": "35.16 MB", "connector.linear1": "70.31 MB", "connector.linear2": "24.61 MB",
            "llm.logits": "1.01 GB"}
    for name, text in seed.items():
        rec = next(r for r in documented.records if r.name == name)
        assert format_bytes(rec.bf16_bytes) == text, name
    table = documented.table()
    assert "Complete Dimension Tracking Table" in table and "| Total |" in table


def test_seed000_weights_table(documented, real):
    doc = {r.component: r.parameters for r in documented.weights}
    assert doc["Connector BLP_4i_2x (→ 3584)"] == 89_142_784            # seed 003
    rows = {r.component: r for r in real.weights}
    assert rows["Whisper-large-v3 encoder"].parameters == 636_968_960      # encoder only: the seed's 1.5B is enc+dec
    assert rows["Connector BLP_4i_2x"].parameters == 94_386_176
    assert rows["Qwen3-8B-Base"].parameters == 8_190_735_360
    total = rows["Total"]
    assert total.parameters == 636_968_960 + 94_386_176 + 8_190_735_360     # ≈ 8.9 B ("approximately 9B")
    assert total.sizes["bf16"] == 2 * total.parameters and total.sizes["4-bit"] == total.parameters / 2
    blob = json.loads(real.to_json())
    assert blob["preset"] == "mufun" and blob["weights"][-1]["parameters"] == total.parameters


def test_real_shapes_under_mufun(real):
    tr = real
    assert tr.shape("whisper.mel") == (1, 128, 3000)
    for i in (0, 7, 15, 32):
        assert tr.shape(f"whisper.hidden.{i}") == (1, 1500, 1280)
    assert tr.shape("whisper.layer0.attn.q") == (1, 20, 1500, 64)
    assert tr.shape("features.pooled") == (4, 1, 300, 1280)
    assert tr.shape("features.concat") == (1, 300, 5120)
    assert tr.shape("features.all_chunks") == (1800, 5120)          # 3 min = 6 chunks × 300 (MuFun README: 1800)
    assert tr.shape("connector.linear1") == (1800, 10240)
    assert tr.shape("connector.linear2") == (1800, 4096)
    assert tr.shape("fusion.sequence") == (1807, 4096)
    assert tr.shape("qwen3.layer0.attn.q") == (1, 32, 1807, 128)   # 32 query heads
    assert tr.shape("qwen3.layer0.attn.k") == (1, 8, 1807, 128)    # 8 kv heads (GQA)
    assert tr.shape("llm.logits") == (1, 1807, 151_936)


def test_seed003_connector(documented_model):
    conn = documented_model.connector
    # seed 003 writes W1 as [5120, 10240] for x @ W1; nn.Linear stores its transpose
    assert tuple(conn.linear1.weight.T.shape) == (5120, 10240) and conn.linear1.bias.shape == (10240,)
    assert tuple(conn.linear2.weight.T.shape) == (10240, 3584) and conn.linear2.bias.shape == (3584,)
    assert conn.linear1.weight.numel() + conn.linear1.bias.numel() == 52_439_040
    assert conn.linear2.weight.numel() + conn.linear2.bias.numel() == 36_703_744
    n = sum(p.numel() for p in conn.parameters())
    assert n == 89_142_784 and n * 2 == 178_285_568                  # "≈ 170 MB" in bf16
    with Tracer() as tr:
        out = conn(torch.empty(1, 600, 5120, device="meta"))
    assert out.shape == (1, 600, 3584)
    assert tr.shape("connector.linear1") == (1, 600, 10240) and _numel(tr, "connector.linear1") == 6_144_000
    assert _numel(tr, "connector.linear2") == 2_150_400


def test_seed002_thirty_seconds_and_two_audios(documented_model):
    m = documented_model
    mels = torch.empty(1, 80, N_FRAMES, device="meta")               # one 30-second chunk
    ids = torch.tensor([41825, 284, AUDIO_TOKEN_INDEX, 323, 3291, 502, 279, 17779])
    with Tracer() as tr:
        embeds, _, _ = m.prepare_inputs([ids], [mels])
        logits = m.llm(embeds=embeds)
    assert tr.shape("connector.linear2") == (600, 3584)
    assert embeds.shape == (1, 607, 3584) and logits.shape == (1, 607, 151_000)   # 2 + 600 + 5
    compare = torch.tensor([9999, AUDIO_TOKEN_INDEX, 323, AUDIO_TOKEN_INDEX])    # "Compare <audio> and <audio>"
    embeds, _, _ = m.prepare_inputs([compare], [mels, mels])
    assert embeds.shape == (1, 1202, 3584)                                          # 1 + 600 + 1 + 600


def test_seed002_token_budget(documented_model):
    """4096 tokens: 3 min (3600 audio tokens) + 70 text tokens fits; 5 min (6000) does not."""
    m = documented_model
    ids = torch.cat([torch.arange(35), torch.tensor([AUDIO_TOKEN_INDEX]), torch.arange(35)])
    three_min = torch.empty(6, 80, N_FRAMES, device="meta")
    embeds, _, _ = m.prepare_inputs([ids], [three_min])
    assert embeds.shape[1] == 3670 <= 4096
    five_min = torch.empty(10, 80, N_FRAMES, device="meta")
    with pytest.raises(FusionError, match=r"6070 tokens exceeds max_seq_len=4096: text 70 tokens \+ audio 1 6000"):
        m.prepare_inputs([ids], [five_min])


@pytest.mark.parametrize("seconds,documented_tokens,real_tokens", [
    (30, 600, 300), (60, 1200, 600), (180, 3600, 1800), (300, 6000, 3000), (600, 12000, 6000),
    # seed 001 says 1 s → 20 and 10 s → 200; MuFun pads every chunk to 30 s and keeps all its tokens
    (1, 600, 300), (10, 600, 300),
])
def test_seed001_duration_to_tokens(seconds, documented_tokens, real_tokens):
    n = seconds * 16_000
    assert audio_token_count(n, mufun_config("as-documented").tokens_per_chunk) == documented_tokens
    assert audio_token_count(n, mufun_config("mufun").tokens_per_chunk) == real_tokens


def test_seed_prompt_ids_and_cli(capsys):
    from omni.cli import main

    assert SEED_PROMPT_IDS.count(AUDIO_TOKEN_INDEX) == 1 and len(SEED_PROMPT_IDS) == 8
    assert main(["trace", "mufun", "--seconds", "30", "--preset", "as-documented", "--json"]) == 0
    blob = json.loads(capsys.readouterr().out)
    shapes = {r["name"]: r["shape"] for r in blob["records"]}
    assert shapes["features.all_chunks"] == [600, 5120] and shapes["fusion.sequence"] == [607, 3584]
