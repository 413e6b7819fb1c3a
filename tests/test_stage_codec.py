"""Codec stage (train/codec.py) smoke run: the loss falls, usage/perplexity are logged, dead codes are
re-seeded, the export loads strictly, a resumed run is exact, and the held-out evaluation reports."""

import math

import pytest
import torch

from omni.evaluation.codec import evaluate
from omni.evaluation.metric import Metric
from omni.models.rvq import RVQ, CodecConfig
from omni.training import load_exported, read_checkpoint, read_export_config, read_metrics
from omni.checkpoint import load_model_state
from speech_stages import CODEC_SMOKE, codec_run, speech_world, train  # noqa: F401  (fixtures)
from training_toy import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")       # 1 thread on a shared CPU


def train_records(run):
    return [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]


def test_codec_smoke_loss_falls_and_usage_is_logged(codec_run):
    recs = train_records(codec_run)
    assert len(recs) == 30 and all(r["skipped"] is None for r in recs)
    loss = [r["loss"] for r in recs]
    assert sum(loss[-5:]) / 5 < 0.85 * sum(loss[:5]) / 5, (loss[:5], loss[-5:])
    for r in recs:
        for k in (0, 1):
            assert 0 < r[f"usage_{k}"] <= 1, r
            assert 1 <= r[f"perplexity_{k}"] <= 128, r
        assert math.isfinite(r["snr_db"]) and r["mel_l1"] > 0 and r["samples_per_s"] > 0
    evals = [r for r in read_metrics(codec_run / "metrics.jsonl") if r["kind"] == "eval"]
    assert [e["step"] for e in evals] == [15, 30]
    assert evals[-1]["val_mel_l1"] < evals[0]["val_mel_l1"] + 0.05
    assert {"val_loss", "val_snr_db", "usage_0", "perplexity_1"} <= set(evals[-1])
    assert (codec_run / "loss.png").stat().st_size > 1000


def test_codec_export_loads_strictly_and_codes_round_trip(codec_run):
    exported_from = read_export_config(codec_run / "export/config.json")[1]["checkpoint"]   # best.pt
    ck = read_checkpoint(codec_run / "checkpoints" / exported_from)
    model = RVQ(CodecConfig(**ck["model_config"]))
    load_model_state(model, ck["model"], exported_from)
    exported = load_exported(codec_run / "export", RVQ, CodecConfig)
    assert torch.equal(model.codebooks, exported.codebooks)
    codes = exported.encode(torch.randn(2, 50, 128) - 5)                      # Part 6's batch
    assert codes.shape == (2, 50, 2)
    mel = exported.decode(codes)
    assert mel.shape == (2, 50, 128)
    assert torch.equal(exported.encode(mel), codes)                            # decoded frames re-encode exactly


def test_codec_resume_is_exact(codec_run, speech_world, tmp_path):
    """Stop at step 15, resume to 30: the same losses and codebooks as the uninterrupted run, across the
    dead-code re-seeding at step 21; k-means is not redone (the checkpoint holds the codebooks).
    (The smoke preset's learning rate is constant after warm-up, so max_steps does not change it.)"""
    run = tmp_path / "resumed"
    common = ["--config", str(CODEC_SMOKE), "--data", str(speech_world), "--out", str(run)]
    train("codec", *common, "--max-steps", "15")
    assert read_checkpoint(run / "checkpoints/latest.pt")["step"] == 15
    train("codec", *common)
    a, b = train_records(codec_run), train_records(run)
    assert [r["step"] for r in b] == list(range(1, 31))
    assert [r["loss"] for r in b] == [r["loss"] for r in a]
    assert torch.equal(load_exported(run / "export", RVQ, CodecConfig).codebooks,
                       load_exported(codec_run / "export", RVQ, CodecConfig).codebooks)


def test_codec_evaluation_reports_reconstruction_and_usage(codec_run, speech_world):
    metrics = evaluate(codec_run / "export", speech_world, split="test", say=lambda s: None)
    assert all(isinstance(m, Metric) for m in metrics)
    by = {m.name.split(" (")[0]: m for m in metrics}
    assert 0 < by["mel L1"].value < 3 and by["mel L1"].unit == "ln-mel"
    assert 2 < by["mel SNR"].value < 40 and by["mel SNR"].unit == "dB"
    assert {"mel SNR, tts clips", "mel SNR, asr clips"} <= set(by)            # per task: the voices differ
    for k in (0, 1):
        assert 0 < by[f"codebook {k} usage"].value <= 100
        assert 1 <= by[f"codebook {k} perplexity"].value <= 128
    assert all(m.goal == "" and m.met is None for m in metrics)
    with pytest.raises(TypeError, match="unexpected keyword"):
        evaluate(codec_run / "export", speech_world, bogus=1)
