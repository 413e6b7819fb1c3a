"""OmniModel and the image / audio / multimodal pipelines (seed 004, Parts 2–4):
token counts 9, 30, 35; fusion order and placeholder replacement checked by
value; context and audio-token limits; cached multimodal generation."""

import json
import logging

import pytest
import torch

from omni import trace
from omni.cli import main
from omni.traces import TRACE_PIPELINES
from omni.models.audio_encoder import AudioEncoderConfig
from omni.models.omni_model import IGNORE_INDEX, OmniConfig, OmniModel
from omni.models.thinker import ThinkerConfig
from omni.models.vision import VisionConfig
from omni.dry_run import audio as audio_pipe
from omni.dry_run import image as image_pipe
from omni.dry_run import multimodal as mm_pipe
from omni.generation.sampling import SamplingConfig
from omni.pipelines.chat import generate_multimodal
from omni.tokenizer import BOS_ID, PAD_ID, BPETokenizer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return OmniModel(OmniConfig()).eval()


@pytest.fixture(scope="module")
def small():
    """ctx_len 64 → at most 16 audio tokens per clip; one layer everywhere."""
    torch.manual_seed(0)
    cfg = OmniConfig(thinker=ThinkerConfig(vocab_size=400, ctx_len=64, n_layers=1),
                     vision=VisionConfig(n_layers=1), audio=AudioEncoderConfig(n_layers=1))
    return OmniModel(cfg).eval()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    lines = ["Look at this picture and listen to the sound.", "What do you see in this image?",
             "What did you hear?", "Describe what you see and hear.", "Then answer the question."] * 40
    path = tmp_path_factory.mktemp("omni_tok") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return BPETokenizer.train(path, path.parent / "tok.model", vocab_size=300)


def pixels(seed, B=1):
    return torch.randn(B, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


def mel(seed, frames=100, B=1):
    return torch.randn(B, frames, 128, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- config
def test_config_holds_the_parts_and_rejects_unknown_keys():
    cfg = OmniConfig()
    assert (cfg.thinker.d_model, cfg.vision.d_model, cfg.audio.d_model) == (256, 128, 192)
    assert cfg.max_audio_tokens == 128 and cfg.audio_token_policy == "error"
    again = OmniConfig(**cfg.to_dict())                       # a checkpoint's JSON round trip
    assert again == cfg and isinstance(again.audio, AudioEncoderConfig)
    with pytest.raises(TypeError):
        OmniConfig(**{"thinker": {"d_model": 256, "typo": 1}})
    with pytest.raises(TypeError):
        OmniConfig(**{"not_a_field": 1})
    with pytest.raises(ValueError, match="audio_token_policy must be one of"):
        OmniConfig(audio_token_policy="drop")


def test_model_owns_encoders_projectors_and_thinker(model):
    assert (model.proj_v.in_features, model.proj_v.out_features) == (128, 256)
    assert (model.proj_a.in_features, model.proj_a.out_features) == (192, 256)
    names = {n for n, _ in model.named_children()}
    assert names == {"vision", "audio_encoder", "proj_v", "proj_a", "thinker"}



def test_mlp_projector_keeps_the_token_shapes_and_trains():
    torch.manual_seed(0)
    cfg = OmniConfig(thinker=ThinkerConfig(vocab_size=400, ctx_len=64, n_layers=1), vision=VisionConfig(n_layers=1),
                     audio=AudioEncoderConfig(n_layers=1), projector="mlp")
    mlp = OmniModel(cfg)
    assert isinstance(mlp.proj_v, torch.nn.Sequential) and mlp.proj_v[0].in_features == 128
    assert mlp.proj_v[-1].out_features == mlp.proj_a[-1].out_features == cfg.thinker.d_model
    tokens = mlp.encode_audio(torch.randn(1, 40, 128))                  # 40 mel frames → 10 audio tokens
    assert tokens.shape == (1, 10, cfg.thinker.d_model)
    tokens.square().mean().backward()
    assert mlp.proj_a[0].weight.grad.abs().sum() > 0 and mlp.proj_a[2].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="projector must be one of"):
        OmniConfig(projector="conv")

# ---------------------------------------------------------------- seed traces
@pytest.mark.parametrize("fn,n_text,n_img,n_aud", [
    (image_pipe.trace_image, 8, 1, 0), (audio_pipe.trace_audio, 5, 0, 25), (mm_pipe.trace_multimodal, 9, 1, 25)])
def test_seed_traces(fn, n_text, n_img, n_aud):
    tr = fn()
    total = n_img + n_aud + n_text
    assert tr.shape("text.ids") == (1, n_text)
    assert tr.shape("text.embeds") == (1, n_text, 256)
    if n_img:
        assert tr.shape("image.pixels") == (1, 3, 224, 224)
        assert tr.shape("vision.patches") == (1, 128, 14, 14)
        assert tr.shape("vision.tokens") == (1, 196, 128)
        assert tr.shape("vision.with_cls") == (1, 197, 128)
        assert tr.shape("vision.cls") == (1, 1, 128)
        assert tr.shape("proj_v") == (1, 1, 256)
    if n_aud:
        assert tr.shape("audio.wave") == (1, 16_000)
        assert tr.shape("audio.mel") == (1, 100, 128)
        assert tr.shape("audio.conv1") == (1, 64, 50, 64)
        assert tr.shape("audio.conv2") == (1, 64, 25, 32)
        assert tr.shape("audio.flat") == (1, 25, 2048)
        assert tr.shape("audio.proj") == (1, 25, 192)
        assert tr.shape("audio.out") == (1, 25, 192)
        assert tr.shape("proj_a") == (1, 25, 256)
    assert tr.shape("fusion.embeds") == (1, total, 256)
    assert tr.shapes("thinker.embed")[0] == (1, total, 256)
    assert tr.shapes("thinker.logits")[0] == (1, total, 5000)
    assert tr.shape("text.last_logits") == (5000,)
    # generation: prefill once, then one token against the growing cache
    assert tr.shape("generate.prefill") == (1, total)
    assert tr.shapes("thinker.layer0.attn.q")[1] == (1, 4, 1, 64)
    assert tr.shapes("thinker.layer0.attn.k")[1] == (1, 4, total + 1, 64)
    assert [s[1] for s in tr.shapes("generate.sequence")] == list(range(total + 1, total + 1 + mm_pipe.TRACE_NEW_TOKENS))


def test_traces_are_registered_in_the_cli(capsys):
    for name in ("image", "audio", "multimodal"):
        assert name in TRACE_PIPELINES
    assert main(["trace", "image", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    shapes = {r["name"]: r["shape"] for r in rows}
    assert shapes["fusion.embeds"] == [1, 9, 256]


def test_trace_with_a_tokenizer_and_without(tokenizer):
    tr = audio_pipe.trace_audio("What did you hear?", tokenizer=tokenizer.path)
    n = len(tokenizer.encode("What did you hear?"))
    assert tr.shape("fusion.embeds") == (1, 25 + n, 256)
    with pytest.raises(ValueError, match="needs a tokenizer"):
        image_pipe.trace_image("Another prompt")


# ---------------------------------------------------------------- fusion by value
def test_concatenation_order_by_value(model):
    ids = torch.tensor([mm_pipe.SEED_EXAMPLE_IDS])
    px, m = pixels(1), mel(2)
    with torch.no_grad():
        f = model.fuse(ids, pixels=px, mel=m)
        img, aud, txt = model.encode_image(px), model.encode_audio(m), model.thinker.embed(ids)
    assert f.embeds.shape == (1, 35, 256)
    assert [(s.kind, s.start, s.length) for s in f.segments] == [("image", 0, 1), ("audio", 1, 25), ("text", 26, 9)]
    torch.testing.assert_close(f.embeds[:, :1], img, rtol=0, atol=0)
    torch.testing.assert_close(f.embeds[:, 1:26], aud, rtol=0, atol=0)
    torch.testing.assert_close(f.embeds[:, 26:], txt, rtol=0, atol=0)
    assert f.token_ids[0, :26].eq(IGNORE_INDEX).all() and f.token_ids[0, 26:].tolist() == mm_pipe.SEED_EXAMPLE_IDS
    assert f.counts() == "image 1 + audio 25 + text 9"
    with torch.no_grad():
        assert model(ids, pixels=px, mel=m).shape == (1, 35, 5000)
        assert model.fuse(ids[:, :8], pixels=px).embeds.shape == (1, 9, 256)
        assert model.fuse(ids[:, :5], mel=m).embeds.shape == (1, 30, 256)


def test_batched_fusion_keeps_rows_apart(model):
    ids = torch.tensor([mm_pipe.SEED_EXAMPLE_IDS, mm_pipe.SEED_EXAMPLE_IDS[::-1]])
    px, m = pixels(3, B=2), mel(4, B=2)
    with torch.no_grad():
        f = model.fuse(ids, pixels=px, mel=m)
        row1 = model.fuse(ids[1:], pixels=px[1:], mel=m[1:])
    assert f.embeds.shape == (2, 35, 256)
    torch.testing.assert_close(f.embeds[1:], row1.embeds, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="batch 1, part 0 has batch 2"):
        model.fuse(ids[:1], pixels=px)


def test_placeholders_replaced_in_place_by_value(small, tokenizer):
    prompt = "Look at <image> this picture and <audio> listen, then <image>answer."
    imgs, m = [pixels(5)[0], pixels(6)[0]], mel(7, frames=40)[0]      # (3, 224, 224) ×2, (40, 128)
    with torch.no_grad():
        f = small.fuse_prompt(prompt, tokenizer, images=imgs, mels=[m])
        e_img0, e_img1 = small.encode_image(imgs[0][None]), small.encode_image(imgs[1][None])
        e_aud = small.encode_audio(m[None])
    pieces = ["Look at ", " this picture and ", " listen, then ", "answer."]
    ids = [[BOS_ID] + tokenizer.encode(pieces[0], add_bos=False)] + \
          [tokenizer.encode(p, add_bos=False) for p in pieces[1:]]
    layout = [("text", len(ids[0])), ("image", 1), ("text", len(ids[1])), ("audio", 10),
              ("text", len(ids[2])), ("image", 1), ("text", len(ids[3]))]
    assert [(s.kind, s.length) for s in f.segments] == layout
    s = f.segments
    with torch.no_grad():
        for seg, expected in ((s[1], e_img0), (s[3], e_aud), (s[5], e_img1)):
            torch.testing.assert_close(f.embeds[:, seg.start:seg.stop], expected, rtol=0, atol=0)
        for seg, piece_ids in zip((s[0], s[2], s[4], s[6]), ids):
            torch.testing.assert_close(f.embeds[:, seg.start:seg.stop], small.thinker.embed(torch.tensor([piece_ids])))
            assert f.token_ids[0, seg.start:seg.stop].tolist() == piece_ids
    assert f.embeds.shape == (1, sum(n for _, n in layout), 256)
    # the tokenizer has no piece for a marker: it would have been split into several tokens
    assert len(tokenizer.encode("<image>", add_bos=False)) > 1


def test_placeholder_at_the_start_follows_bos(small, tokenizer):
    with torch.no_grad():
        f = small.fuse_prompt("<audio>What did you hear?", tokenizer, mels=[mel(8, frames=20)[0]])
    assert [(s.kind, s.start) for s in f.segments][:3] == [("text", 0), ("audio", 1), ("text", 6)]
    assert f.token_ids[0, 0] == BOS_ID


@pytest.mark.parametrize("prompt,n_img,n_aud", [("<image> and <image>", 1, 0), ("no markers", 1, 0),
                                                ("<audio>", 0, 0), ("<image>", 1, 1)])
def test_marker_count_mismatch(small, tokenizer, prompt, n_img, n_aud):
    with pytest.raises(ValueError, match=r"prompt has \d <image> and \d <audio> markers, but "
                                         f"{n_img} images and {n_aud} audio clips were given"):
        small.fuse_prompt(prompt, tokenizer, images=[pixels(0)[0]] * n_img, mels=[mel(0)[0]] * n_aud)


# ---------------------------------------------------------------- limits
def test_context_overflow_names_each_part(small):
    ids = torch.ones(1, 60, dtype=torch.long)
    with pytest.raises(ValueError, match=r"fused sequence of 71 tokens exceeds ctx_len=64: "
                                         r"image 1 \+ audio 10 \+ text 60"):
        small.fuse(ids, pixels=pixels(0), mel=mel(0, frames=40))
    assert small.fuse(ids[:, :53], pixels=pixels(0), mel=mel(0, frames=40)).embeds.shape == (1, 64, 256)


def test_audio_policy_error_by_default(small):
    assert small.cfg.max_audio_tokens == 16
    with pytest.raises(ValueError, match=r"100 mel frames give 25 audio tokens, over the limit of 16 "
                                         r"\(ctx_len 64 // 4\).*audio_policy='truncate'"):
        small.fuse(torch.ones(1, 3, dtype=torch.long), mel=mel(0))
    assert small.fuse(torch.ones(1, 3, dtype=torch.long), mel=mel(0, frames=64)).embeds.shape == (1, 19, 256)


def test_audio_policy_truncate_when_asked_and_says_so(small, caplog):
    m = mel(9)
    with caplog.at_level(logging.WARNING, logger="omni.models.omni_model"), torch.no_grad():
        f = small.fuse(torch.ones(1, 3, dtype=torch.long), mel=m, audio_policy="truncate")
        first = small.encode_audio(m[:, :64])                          # the first 16 tokens = 64 frames
    assert f.embeds.shape == (1, 19, 256)
    torch.testing.assert_close(f.embeds[:, :16], first, rtol=0, atol=0)
    assert any("truncated from 25 to 16 audio tokens" in r.getMessage() for r in caplog.records)
    # a config whose policy is "truncate" does the same without the per-call argument
    cfg = OmniConfig(**{**small.cfg.to_dict(), "audio_token_policy": "truncate"})
    assert OmniModel(cfg).eval().audio_token_count(100) == 16
    with pytest.raises(ValueError, match="audio policy must be one of"):
        small.audio_token_count(100, policy="drop")


# ---------------------------------------------------------------- labels
def test_labels_mask_media_prompt_and_padding(model):
    ids = torch.tensor([[BOS_ID, 10, 11, 12, 13, PAD_ID], [BOS_ID, 20, 21, 22, 23, 24]])
    with torch.no_grad():
        f = model.fuse(ids, pixels=pixels(0, B=2))
    lab = f.labels(prompt_tokens=[3, 2])
    assert lab.shape == (2, 7)
    assert lab[0].tolist() == [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 12, 13, IGNORE_INDEX]
    assert lab[1].tolist() == [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 21, 22, 23, 24]
    assert f.labels()[1].tolist() == [IGNORE_INDEX, BOS_ID, 20, 21, 22, 23, 24]
    with pytest.raises(ValueError, match="3 entries for a batch of 2"):
        f.labels([1, 2, 3])


# ---------------------------------------------------------------- generation
def test_multimodal_generation_with_cache_equals_uncached_greedy(model):
    with torch.no_grad():
        f = model.fuse(torch.tensor([mm_pipe.SEED_EXAMPLE_IDS]), pixels=pixels(11), mel=mel(12))
    sampling = SamplingConfig(max_new_tokens=12)
    cached = generate_multimodal(model, f, sampling, eos_id=None, return_logits=True)
    plain = generate_multimodal(model, f, sampling, eos_id=None, use_cache=False, return_logits=True)
    assert cached.tokens.shape == (1, 12)
    assert torch.equal(cached.tokens, plain.tokens)
    for a, b in zip(cached.step_logits, plain.step_logits):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # the first step's logits are the fused prompt's last position
    with torch.no_grad():
        torch.testing.assert_close(cached.step_logits[0], model.thinker(embeds=f.embeds)[:, -1])


def test_prefill_happens_once(model):
    with torch.no_grad():
        f = model.fuse(torch.tensor([audio_pipe.SEED_EXAMPLE_IDS]), mel=mel(13))
    with trace.Tracer() as tr:
        generate_multimodal(model, f, SamplingConfig(max_new_tokens=4), eos_id=None)
    assert tr.shapes("generate.prefill") == [(1, 30)]
    assert tr.shapes("thinker.embed") == [(1, 1, 256)]        # the one decode step shown in full


# ---------------------------------------------------------------- many rows, one encoder call each
def test_fuse_rows_equals_each_row_fused_alone():
    """Training encodes every image of a batch in one ViTTiny call and every clip (of different lengths)
    in one padded AudioEncoderTiny call; each row must equal fuse_parts of that row alone."""
    torch.manual_seed(0)
    cfg = OmniConfig(thinker=ThinkerConfig(vocab_size=400, ctx_len=128, n_layers=1),
                     vision=VisionConfig(n_layers=1, image_size=64, patch_size=16),
                     audio=AudioEncoderConfig(n_layers=1), vision_tokens="patches", audio_token_divisor=2)
    m = OmniModel(cfg).eval()
    ids = lambda n: torch.arange(1, n + 1)                                            # noqa: E731
    img = lambda s: torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(s))  # noqa: E731
    rows = [[("text", ids(3)), ("image", img(1)), ("text", ids(5))],
            [("text", ids(2)), ("audio", mel(2, frames=180)[0]), ("text", ids(4))],
            [("text", ids(2)), ("image", img(3)), ("audio", mel(4, frames=61)[0]), ("text", ids(1))],
            [("text", ids(7))]]
    with torch.no_grad():
        together = m.fuse_rows(rows)
        for row, fused in zip(rows, together):
            alone = m.fuse_parts([(kind, x[None]) for kind, x in row])
            assert fused.counts() == alone.counts()
            assert torch.equal(fused.token_ids, alone.token_ids)
            torch.testing.assert_close(fused.embeds, alone.embeds, atol=1e-5, rtol=1e-5)
    assert together[0].positions("image")[0].length == 1 + cfg.vision.n_patches == 17


def test_vision_tokens_option():
    torch.manual_seed(0)
    base = dict(thinker=ThinkerConfig(vocab_size=400, ctx_len=64, n_layers=1),
                vision=VisionConfig(n_layers=1, image_size=64, patch_size=16), audio=AudioEncoderConfig(n_layers=1))
    assert OmniConfig(**base).image_tokens == 1                                      # the seed's layout
    m = OmniModel(OmniConfig(**base, vision_tokens="patches")).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = m.encode_image(x)
        cls, patches = m.vision(x)
    assert tokens.shape == (2, 17, 256)
    torch.testing.assert_close(tokens, m.proj_v(torch.cat([cls, patches], dim=1)))
    with pytest.raises(ValueError, match="vision_tokens must be one of"):
        OmniConfig(**base, vision_tokens="grid")
