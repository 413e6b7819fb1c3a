"""Vocoder stage (omni/stages/vocoder.py) smoke run and VocosTiny's shapes: the loss falls against the
untrained network, the output is exactly frames × 1280 samples (Part 5: 301 → 385,280), the export
loads strictly, and the held-out evaluation reports the ceilings."""

import pytest
import torch

from omni.audio.griffin_lim import VocoderError
from omni.evaluation.vocoder import evaluate
from omni.models.vocoder import VocosConfig, VocosTiny, vocoder_loss
from omni.stages.vocoder import VocoderDataConfig, clip_segments
from omni.audio.speech_mel import SpeechMelConfig
from omni.training import export_safetensors, load_exported, read_metrics
from speech_stages import speech_world, train, vocoder_run, VOCODER_SMOKE  # noqa: F401  (fixtures)
from training_toy import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")       # 1 thread on a shared CPU

TINY = VocosConfig(dim=16, intermediate=32, n_layers=1, n_up_layers=1)


@pytest.mark.parametrize("frames", [1, 17, 301])
def test_output_is_frames_times_1280_samples(frames):
    torch.manual_seed(0)
    model = VocosTiny(TINY).eval()
    with torch.no_grad():
        wave = model(torch.randn(2, frames, 128) - 5)
    assert wave.shape == (2, frames * 1280)                   # 301 frames → 385,280 samples
    assert model.vocode(torch.randn(frames, 128) - 5).shape == (frames * 1280,)


def test_vocode_refuses_what_griffin_lim_refuses():
    model = VocosTiny(TINY).eval()
    with pytest.raises(VocoderError, match=r"shape \(T, 128\)"):
        model.vocode(torch.zeros(10, 80))
    with pytest.raises(VocoderError, match="NaN/Inf"):
        model.vocode(torch.full((4, 128), float("nan")))
    with pytest.raises(AssertionError, match=r"mel \(B, T, 128\)"):
        model(torch.zeros(4, 128))


def test_segments_pair_each_mel_frame_with_its_1280_samples(speech_world):
    cfg = VocoderDataConfig(segment_frames=8, max_clips=2, tasks=("tts",))
    seg = clip_segments(speech_world, "train", cfg, SpeechMelConfig(), say=lambda s: None)
    M = seg["mel"].shape[0]
    assert M >= 2 and seg["mel"].shape == (M, 8, 128) and seg["wave"].shape == (M, 8 * 1280)


def test_vocoder_smoke_trains_and_its_loss_falls(vocoder_run, speech_world):
    """The trained export beats the same network untrained on held-out segments, by a clear margin."""
    recs = [r for r in read_metrics(vocoder_run / "metrics.jsonl") if r["kind"] == "train"]
    assert len(recs) == 60 and all(r["skipped"] is None for r in recs)
    assert {"spectral_convergence", "log_mag_l1", "asr_mel_l1"} <= set(recs[-1])
    trained = load_exported(vocoder_run / "export", VocosTiny, VocosConfig).eval()
    torch.manual_seed(0)
    untrained = VocosTiny(trained.cfg).eval()
    seg = clip_segments(speech_world, "val", VocoderDataConfig(segment_frames=8, max_clips=6),
                        SpeechMelConfig(), say=lambda s: None)
    with torch.no_grad():
        before, _ = vocoder_loss(untrained(seg["mel"]), seg["wave"])
        after, _ = vocoder_loss(trained(seg["mel"]), seg["wave"])
    assert after < 0.8 * before, (float(before), float(after))


def test_vocoder_evaluation_reports_the_ceilings(vocoder_run, speech_world, tmp_path):
    from omni.models.asr import ASRConfig, ASRModel

    torch.manual_seed(0)
    asr_dir = export_safetensors(ASRModel(ASRConfig()), ASRConfig(), tmp_path / "asr")    # untrained: plumbing
    metrics = evaluate(vocoder_run / "export", speech_world, split="test", asr=asr_dir, max_items=2,
                       say=lambda s: None)
    by = {m.name.split(" (")[0]: m for m in metrics}
    mine = by["CER, learned vocoder of the true mel"]
    original = by["CER, original clips"]
    assert mine.goal == f"≤ 1.5 × originals = {1.5 * original.value:.1f} %"
    assert mine.met == (mine.value <= 1.5 * original.value)
    assert "CER, Griffin-Lim of the true mel" in by and by["vocoder loss"].value > 0
    assert not any("CER" in m.name for m in evaluate(vocoder_run / "export", speech_world, split="test",
                                                      asr=None, max_items=1, say=lambda s: None))
