"""Every real model, forward and backward under CPU autocast (bf16, and fp16 where torch offers it),
against the same step in fp32: finite loss and gradients, and agreement within stated tolerances.

Tolerances, about ten times the largest difference measured over the six models (tiny configs
with randomised weights, see :func:`randomize`):

  loss       |low − fp32| ≤ rtol · |fp32|          bf16 5e-3 (measured ≤ 6.1e-4), fp16 5e-4 (≤ 3.3e-5)
  gradients  cosine(low, fp32) ≥ …, all flattened   bf16 0.998 (≥ 0.99987), fp16 0.9999 (≥ 0.999997)
             |‖low‖ / ‖fp32‖ − 1| ≤ …               bf16 1.5e-2 (≤ 1.7e-3), fp16 3e-3 (≤ 2.8e-4)

bf16 keeps 8 bits of mantissa and fp16 11, hence fp16's tighter bounds. They catch what breaks in
practice (an overflow, a NaN, a layer left in the wrong dtype or dropped from the graph), not the
last digit. A hook on the first Linear checks that autocast really ran it in the low precision.
"""

import pytest
import torch
import torch.nn.functional as F

from omni.models.asr import ASRConfig, ASRModel
from omni.models.audio_encoder import AudioEncoderConfig
from omni.models.omni_model import IGNORE_INDEX, OmniConfig, OmniModel
from omni.models.talker import TalkerConfig, TalkerTiny, talker_loss
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.models.vision import VisionConfig
from omni.mufun.config import Qwen3Config, WhisperConfig
from omni.mufun.qwen3 import Qwen3LM
from omni.mufun.whisper import WhisperEncoder
from omni.training.ctc import ctc_loss

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
LOSS_RTOL = {"bf16": 5e-3, "fp16": 5e-4}
GRAD_COS = {"bf16": 0.998, "fp16": 0.9999}
GRAD_NORM_RTOL = {"bf16": 1.5e-2, "fp16": 3e-3}


def gen(seed):
    return torch.Generator().manual_seed(seed)


def thinker():
    model = ThinkerLM(ThinkerConfig(vocab_size=300, ctx_len=32, d_model=64, n_layers=2, n_heads=2, ffn_hidden=128))
    ids = torch.randint(0, 300, (2, 24), generator=gen(1))

    def loss(m):
        logits = m(ids=ids[:, :-1])
        return F.cross_entropy(logits.float().reshape(-1, 300), ids[:, 1:].reshape(-1))
    return model, loss


def talker():
    cfg = TalkerConfig(d_model=64, n_layers=2, n_heads=2, ffn_hidden=128, text_vocab_size=300, max_text_tokens=16)
    model = TalkerTiny(cfg)
    text = torch.randint(4, 300, (2, 6), generator=gen(2))
    codes = torch.randint(0, cfg.codebook_size, (2, 12, cfg.n_codebooks), generator=gen(3))
    return model, lambda m: talker_loss(m, text, codes, lengths=torch.tensor([12, 9]))[0]


def omni_model():
    cfg = OmniConfig(thinker=ThinkerConfig(vocab_size=300, ctx_len=64, d_model=64, n_layers=1, n_heads=2,
                                           ffn_hidden=128),
                     vision=VisionConfig(image_size=32, patch_size=8, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64),
                     audio=AudioEncoderConfig(conv_channels=8, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64))
    model = OmniModel(cfg)
    ids = torch.randint(4, 300, (1, 10), generator=gen(4))
    pixels = torch.randn(1, 3, 32, 32, generator=gen(5))
    mel = torch.randn(1, 60, 128, generator=gen(6))

    def loss(m):
        fused = m.fuse(ids, pixels=pixels, mel=mel)
        logits = m.thinker(embeds=fused.embeds)
        targets = fused.token_ids[:, 1:]
        assert (targets != IGNORE_INDEX).sum() >= 9                 # the text positions are scored
        return F.cross_entropy(logits[:, :-1].float().reshape(-1, 300), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX)
    return model, loss


def asr():
    model = ASRModel(ASRConfig(encoder=AudioEncoderConfig(conv_channels=8, d_model=32, n_layers=2, n_heads=2,
                                                          ffn_hidden=64)))
    batch = {"mel": torch.randn(2, 80, 128, generator=gen(7)), "mel_lengths": torch.tensor([80, 60]),
             "labels": torch.randint(1, 98, (2, 6), generator=gen(8)), "label_lengths": torch.tensor([6, 4])}
    return model, lambda m: ctc_loss(m, batch)[0]


def qwen3():
    model = Qwen3LM(Qwen3Config(vocab_size=200, hidden_size=48, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                                intermediate_size=96, max_position_embeddings=64))
    ids = torch.randint(0, 200, (2, 20), generator=gen(9))
    labels = ids.clone()
    labels[:, :5] = -100
    return model, lambda m: m.logits_and_loss(labels, ids=ids)[1]


def whisper():
    model = WhisperEncoder(WhisperConfig(n_mels=16, d_model=32, n_layers=2, n_heads=2, ffn_dim=64, n_positions=20))
    mel = torch.randn(2, 16, 40, generator=gen(10))
    target = torch.randn(2, 20, 32, generator=gen(11))
    return model, lambda m: F.mse_loss(m(mel)[-1].float(), target)


MODELS = {"ThinkerLM": thinker, "TalkerTiny": talker, "OmniModel": omni_model, "ASRModel": asr, "Qwen3LM": qwen3,
          "WhisperEncoder": whisper}


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Weights of unit fan-in gain and perturbed norms/biases: init_normal's std 0.02 leaves the logits
    nearly uniform, where any precision looks exact. These give logits of a trained model's spread."""
    g = gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * p[0].numel() ** -0.5)
            else:
                p.add_(0.1 * torch.randn(p.shape, generator=g))


def loss_and_grads(model, loss_fn, dtype=None):
    model.zero_grad(set_to_none=True)
    if dtype is None:
        loss = loss_fn(model)
    else:
        with torch.autocast("cpu", dtype=dtype):
            loss = loss_fn(model)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return loss.detach(), grads


@pytest.mark.parametrize("precision", list(DTYPES))
@pytest.mark.parametrize("name", list(MODELS))
def test_autocast_forward_backward_agrees_with_fp32(name, precision):
    dtype = DTYPES[precision]
    if not torch.amp.autocast_mode.is_autocast_available("cpu"):
        pytest.skip("no CPU autocast in this torch")
    torch.manual_seed(0)
    model, loss_fn = MODELS[name]()
    randomize(model)
    model.train()
    ref_loss, ref_grads = loss_and_grads(model, loss_fn)

    seen = []
    first_linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    hook = first_linear.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    try:
        low_loss, low_grads = loss_and_grads(model, loss_fn, dtype)
    finally:
        hook.remove()
    assert seen and all(d == dtype for d in seen), f"autocast did not run {name}'s first Linear in {dtype}: {seen}"

    assert torch.isfinite(low_loss) and torch.isfinite(low_grads).all(), f"{name} under {precision}: not finite"
    assert low_grads.dtype == torch.float32                        # parameters and their grads stay fp32
    rel = abs(float(low_loss) - float(ref_loss)) / abs(float(ref_loss))
    assert rel <= LOSS_RTOL[precision], f"{name} {precision} loss {float(low_loss):.6g} vs fp32 {float(ref_loss):.6g}"
    cos = float(F.cosine_similarity(low_grads, ref_grads, dim=0))
    assert cos >= GRAD_COS[precision], f"{name} {precision}: gradient cosine {cos:.6f} < {GRAD_COS[precision]}"
    norm_rel = abs(float(low_grads.norm() / ref_grads.norm()) - 1)
    assert norm_rel <= GRAD_NORM_RTOL[precision], f"{name} {precision}: gradient norm off by {norm_rel:.3%}"


# ---------------------------------------------------------------------------
# Two bugs the fp16 runs of benchmarks/gpu_check.py found (CPU smoke presets)
# ---------------------------------------------------------------------------
def test_check_finite_is_not_fooled_by_an_fp16_sum_that_overflows():
    from omni.nn import check_finite

    logits = torch.full((32, 64, 320), 4.0, dtype=torch.float16)    # fine values; their fp16 sum is inf
    assert not torch.isfinite(logits.sum())
    check_finite(logits, "fp16 logits")                               # used to raise "0 NaN and 0 Inf"
    logits[3, 2, 1] = float("nan")
    with pytest.raises(RuntimeError, match="fp16 logits are not finite: 1 NaN and 0 Inf"):
        check_finite(logits, "fp16 logits")


@pytest.mark.parametrize("precision", list(DTYPES))
def test_log_mel_recipes_are_fp32_under_autocast(precision):
    # Evaluation runs under the training run's autocast and computes its clips' features there:
    # an fp16 filterbank matmul overflowed (inf log-mel, then NaN encoder outputs).
    from omni.audio.speech_mel import SpeechMelConfig, speech_mel
    from omni.audio.tiny_mel import log_mel
    from omni.audio.whisper_mel import whisper_log_mel

    wave = 0.5 * torch.randn(16_000, generator=gen(12))
    recipes = {"tiny": log_mel, "speech": lambda w: speech_mel(w, SpeechMelConfig()), "whisper": whisper_log_mel}
    for name, recipe in recipes.items():
        ref = recipe(wave)
        with torch.autocast("cpu", dtype=DTYPES[precision]):
            low = recipe(wave)
        assert low.dtype == torch.float32 and torch.equal(low, ref), name
