"""The conv codec (``CodecConfig.encoder = "conv"``, train/configs/codec/smoke_conv.json) as a stage: the smoke
run's loss falls, its export loads strictly, and its codes go through the Talker and TTS path unchanged in
shape; ``omni eval codec`` gives the codec ceiling's CER rows with an ASR judge."""

import importlib.util

import pytest
import torch

from omni.audio.griffin_lim import VocoderConfig
from omni.checkpoint import CheckpointError
from omni.evaluation.codec import evaluate
from omni.evaluation.talker import evaluate as evaluate_talker
from omni.exports import load_stage
from omni.models.rvq import RVQ, CodecConfig
from omni.pipelines.tts import synthesize
from omni.training import export_safetensors, load_exported, read_metrics
from speech_stages import TALKER_SMOKE, codec_conv_run, speech_world, train, vocoder_run  # noqa: F401  (fixtures)
from training_toy import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")       # 1 thread on a shared CPU

HAS_ASR = importlib.util.find_spec("omni.models.asr") is not None


def test_conv_codec_smoke_loss_falls(codec_conv_run):
    recs = [r for r in read_metrics(codec_conv_run / "metrics.jsonl") if r["kind"] == "train"]
    assert len(recs) == 30 and all(r["skipped"] is None for r in recs)
    loss = [r["loss"] for r in recs]
    assert sum(loss[-5:]) / 5 < 0.9 * sum(loss[:5]) / 5, (loss[:5], loss[-5:])
    rec = [r["reconstruction_loss"] for r in recs]                         # the conv codec's own term
    assert sum(rec[-5:]) / 5 < sum(rec[:5]) / 5
    evals = [r for r in read_metrics(codec_conv_run / "metrics.jsonl") if r["kind"] == "eval"]
    assert [e["step"] for e in evals] == [15, 30] and evals[-1]["val_mel_l1"] < evals[0]["val_mel_l1"] + 0.05


def test_conv_codec_export_loads_strictly_and_keeps_the_shapes(codec_conv_run, tmp_path):
    rvq = load_stage("codec", codec_conv_run / "export").model
    assert rvq.cfg.encoder == "conv" and any(k.startswith("encoder.") for k in rvq.state_dict())
    codes = rvq.encode(torch.randn(2, 50, 128) - 5)                          # Part 6's batch
    assert codes.shape == (2, 50, 2)
    assert rvq.decode(codes).shape == (2, 50, 128)
    assert rvq.decode(torch.zeros(1, 301, 2, dtype=torch.long)).shape == (1, 301, 128)   # Part 5
    export_safetensors(rvq, CodecConfig(), tmp_path / "mislabelled")          # conv weights, the seed's config:
    with pytest.raises(CheckpointError, match="encoder"):                      # refused, the keys named
        load_exported(tmp_path / "mislabelled", RVQ, CodecConfig)


def test_conv_codec_round_trips_through_the_talker_and_tts(codec_conv_run, speech_world, tmp_path):
    """The Talker trains on the conv codec's (T, 2) codes; its evaluation and TTS decode through the decoder."""
    run = tmp_path / "talker"
    train("talker", "--config", str(TALKER_SMOKE), "--data", str(speech_world), "--codec",
          str(codec_conv_run / "export"), "--out", str(run), "--max-steps", "10")
    metrics = evaluate_talker(run / "export", speech_world, split="test", codec=codec_conv_run / "export",
                              asr=None, vocoder=None, max_items=1, say=lambda s: None)
    assert {"teacher-forced code accuracy, base", "sentences ended by the stop head"} <= {m.name for m in metrics}
    talker = load_stage("talker", run / "export").model
    rvq = load_stage("codec", codec_conv_run / "export").model
    out = synthesize([5, 6, 7], talker, rvq, vocoder=VocoderConfig(n_iter=1))
    n = out.codes.shape[1]
    assert out.codes.shape == (1, n, 2) and out.mel.shape == (n, 128) and out.wave.shape == (n * 1280,)


@pytest.mark.skipif(not HAS_ASR, reason="omni/models/asr.py (the audio stage's ASRModel) is not in this tree")
def test_codec_ceiling_rows_with_an_asr_judge(codec_conv_run, vocoder_run, speech_world, tmp_path):
    from omni.models.asr import ASRConfig, ASRModel

    torch.manual_seed(0)
    asr_dir = export_safetensors(ASRModel(ASRConfig()), ASRConfig(), tmp_path / "asr")    # untrained: plumbing
    metrics = evaluate(codec_conv_run / "export", speech_world, split="test", asr=asr_dir,
                       vocoder=vocoder_run / "export", say=lambda s: None)
    cer_rows = [m.name for m in metrics if "CER" in m.name]
    assert cer_rows[1:] == [
        "CER, Griffin-Lim of the true mel (vocoder ceiling)",
        "CER, Griffin-Lim of codec(true mel) (codec ceiling: a perfect Talker)",
        "CER, learned vocoder of the true mel (vocoder ceiling)",
        "CER, learned vocoder of codec(true mel) (codec ceiling: a perfect Talker)"]
    assert cer_rows[0].startswith("CER, original clips (") and all(m.unit == "%" for m in metrics if "CER" in m.name)
    assert "mel SNR" in {m.name for m in metrics}
    with pytest.raises(ValueError, match="need an ASR judge"):
        evaluate(codec_conv_run / "export", speech_world, vocoder=vocoder_run / "export")
