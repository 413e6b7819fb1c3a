"""The TTS pipeline and the traces of seed 004, Parts 5 and 6 (every documented shape)."""

import json

import pytest
import soundfile as sf
import torch

from omni.audio.griffin_lim import VocoderConfig
from omni.cli import main
from omni.traces import TRACE_PIPELINES
from omni.models.rvq import RVQ, CodecConfig
from omni.models.talker import TalkerConfig, TalkerTiny
from omni.dry_run.tts import SEED_TTS_TEXT, trace_talker_train, trace_tts
from omni.pipelines.tts import speak, synthesize
from omni.tokenizer import BPETokenizer


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = dict(d_model=64, n_layers=2, n_heads=2, ffn_hidden=128)


def test_trace_tts_part5_shapes():
    tr = trace_tts(talker_cfg=TalkerConfig(**TINY), vocoder=VocoderConfig(n_iter=1))
    assert tr.shape("tts.text_ids") == (1, 10)                         # 10 token ids
    assert tr.shape("tts.frame_cap") == (300,)                          # 10 tokens → 300 frames
    assert tr.shape("tts.codes.start") == (1, 1, 2)                     # start: zero codes
    assert tr.shape("tts.codes.frame0") == (1, 2, 2)
    assert tr.shape("tts.codes.frame1") == (1, 3, 2)
    assert tr.shape("tts.codes") == (1, 301, 2)                         # 300 frames + start
    assert tr.shapes("talker.base_logits")[:2] == [(1, 1, 128), (1, 1, 128)]
    assert tr.shape("rvq.decode.codes") == (1, 301, 2)
    assert tr.shape("tts.mel") == (301, 128)                            # 301 mel frames
    assert tr.shape("vocoder.wave") == (385_280,)                        # 24.08 s @ 16 kHz
    assert "stop head ignored" in " ".join(r.desc for r in tr.records)  # the dry run says so


def test_trace_talker_train_part6_shapes():
    tr = trace_talker_train(talker_cfg=TalkerConfig(**TINY))
    assert tr.shape("train.mel") == (2, 50, 128)
    assert tr.shape("rvq.codes") == (2, 50, 2)
    assert tr.shape("talker.prev_codes") == (2, 50, 2)
    assert tr.shape("talker.base_logits") == (2, 50, 128)
    assert tr.shape("talker.res_logits") == (2, 50, 128)
    assert tr.shape("talker.base_flat") == (100, 128) and tr.shape("talker.res_flat") == (100, 128)
    assert tr.shape("talker.base_target") == (100,) and tr.shape("talker.res_target") == (100,)
    assert tr.shape("talker.loss") == ()
    assert tr.shape("train.base_head.grad") == (128, 64)


def test_cli_registers_traces(capsys):
    assert TRACE_PIPELINES["tts"] is trace_tts
    assert main(["trace", "talker-train", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {"name": "talker.prev_codes", "shape": [2, 50, 2]}.items() <= {
        k: v for r in records if r["name"] == "talker.prev_codes" for k, v in r.items()}.items()


def test_trace_needs_tokenizer_for_other_text():
    with pytest.raises(ValueError, match="needs a tokenizer"):
        trace_tts("Something else.")


def test_speak_writes_16k_wav_and_rejects_empty_text(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join([SEED_TTS_TEXT, "the cat sees a blue star.", "a dog plays with the piano."] * 200))
    tok = BPETokenizer.train(corpus, tmp_path / "tok.model", vocab_size=400)
    torch.manual_seed(0)
    talker = TalkerTiny(TalkerConfig(**TINY, text_vocab_size=tok.vocab_size, min_frames=5, max_frames=40)).eval()
    rvq = RVQ(CodecConfig())
    out = speak(SEED_TTS_TEXT, tok, talker, rvq, tmp_path / "out.wav", vocoder=VocoderConfig(n_iter=2))
    data, sr = sf.read(tmp_path / "out.wav")
    assert sr == 16_000 and data.shape == (out.codes.shape[1] * 1280,)
    assert out.mel.shape == (out.codes.shape[1], 128)
    with pytest.raises(ValueError, match="empty text"):
        speak("   ", tok, talker, rvq, tmp_path / "x.wav")
    too_long = " ".join(["the cat sees a blue star."] * 40)
    with pytest.raises(ValueError, match="max_text_tokens"):
        speak(too_long, tok, talker, rvq, tmp_path / "y.wav")


def test_mismatched_parts_raise():
    with pytest.raises(ValueError, match="the codec has"):
        synthesize([5, 6], TalkerTiny(TalkerConfig(**TINY, codebook_size=64)), RVQ(CodecConfig()))
