"""Real-format adapters on fixtures written here, and bad-data reports that count correctly."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from omni.audio.io import save_audio
from omni.data import adapters
from omni.data.manifest import ManifestError, read_manifest
from omni.data.quality import (EMPTY_TEXT, MISSING_FILE, OUT_OF_VOCAB, TOO_SHORT, UNREADABLE_AUDIO,
                               UNREADABLE_IMAGE, BadDataError, check_records, ctc_min_frames, encoder_frames)

SR = 16_000


def _wav(path, seconds):
    t = np.arange(int(seconds * SR)) / SR
    return save_audio(path, 0.3 * np.sin(2 * np.pi * 220 * t).astype(np.float32))


def _png(path, colour=(200, 10, 10)):
    Image.new("RGB", (32, 32), colour).save(path)
    return path


def test_ctc_length_rule():
    assert ctc_min_frames("abc") == 3
    assert ctc_min_frames("hello") == 6           # one repeat: "ll"
    assert ctc_min_frames("aaa") == 5
    assert encoder_frames(SR) == 25               # 101 mel frames // 4
    assert encoder_frames(2 * SR) == 50
    assert encoder_frames(44_100, sample_rate=44_100) == 25


def test_text_corpus_file_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\nsecond line\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("third\n")
    assert [r.text for r in adapters.read_text_corpus(tmp_path / "a.txt")] == ["first line", "second line"]
    assert [r.text for r in adapters.read_text_corpus(tmp_path)] == ["first line", "second line", "third"]


def test_asr_csv_jsonl_and_librispeech(tmp_path):
    _wav(tmp_path / "a.wav", 2.0)
    with (tmp_path / "m.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audio", "text", "spk"])
        w.writerow(["a.wav", "hello there", "s1"])
    recs = adapters.read_asr_csv(tmp_path / "m.csv", speaker_col="spk")
    assert recs[0].audio == tmp_path / "a.wav" and recs[0].text == "hello there" and recs[0].speaker == "s1"
    with pytest.raises(ManifestError, match="no column 'sentence'"):
        adapters.read_asr_csv(tmp_path / "m.csv", text_col="sentence")

    (tmp_path / "m.jsonl").write_text(json.dumps({"audio_filepath": "a.wav", "text": "hi"}) + "\n")
    recs = adapters.read_asr_jsonl(tmp_path / "m.jsonl", audio_key="audio_filepath")
    assert recs[0].audio == tmp_path / "a.wav" and recs[0].text == "hi"

    chapter = tmp_path / "libri" / "19" / "198"
    chapter.mkdir(parents=True)
    _wav(chapter / "19-198-0000.flac", 2.0)
    (chapter / "19-198.trans.txt").write_text("19-198-0000 NORTHANGER ABBEY\n19-198-0001 CHAPTER ONE\n")
    recs = adapters.read_librispeech(tmp_path / "libri")
    assert [(r.id, r.text, r.speaker) for r in recs] == [("19-198-0000", "NORTHANGER ABBEY", "19"),
                                                         ("19-198-0001", "CHAPTER ONE", "19")]
    kept, report = check_records(recs, "asr", "libri", threshold=0.5)   # 0001's flac is missing
    assert len(kept) == 1 and report.counts() == {MISSING_FILE: 1}


def test_coco_and_caption_jsonl(tmp_path):
    (tmp_path / "img").mkdir()
    _png(tmp_path / "img" / "000001.png")
    coco = {"images": [{"id": 1, "file_name": "000001.png"}],
            "annotations": [{"id": 10, "image_id": 1, "caption": "A red square. "},
                            {"id": 11, "image_id": 1, "caption": "Something red."}]}
    (tmp_path / "cap.json").write_text(json.dumps(coco))
    recs = adapters.read_coco_captions(tmp_path / "cap.json", tmp_path / "img")
    assert [(r.id, r.caption) for r in recs] == [("10", "A red square."), ("11", "Something red.")]
    assert recs[0].image == tmp_path / "img" / "000001.png"
    coco["annotations"].append({"id": 12, "image_id": 7, "caption": "x"})
    (tmp_path / "bad.json").write_text(json.dumps(coco))
    with pytest.raises(ManifestError, match="image_id 7"):
        adapters.read_coco_captions(tmp_path / "bad.json", tmp_path / "img")

    (tmp_path / "c.jsonl").write_text(json.dumps({"image": "img/000001.png", "caption": "red"}) + "\n")
    recs = adapters.read_caption_jsonl(tmp_path / "c.jsonl")
    assert recs[0].image == tmp_path / "img" / "000001.png"


def test_mufun_conversations(tmp_path):
    _wav(tmp_path / "song.wav", 3.0)
    _wav(tmp_path / "b.wav", 1.0)
    data = [{"id": "x1", "audio": "song.wav", "segment": [0.5, 2.5],
             "conversations": [{"from": "human", "value": "<audio>\nWhat genre is this?"},
                               {"from": "gpt", "value": "Blues."}]},
            {"id": "x2", "audio": ["song.wav", "b.wav"], "audio_start": 0.0, "audio_end": 1.0,
             "conversations": [{"from": "human", "value": "<audio> vs <audio>?"}, {"from": "gpt", "value": "A."}]}]
    (tmp_path / "conv.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="1 segments for 2 audio"):
        adapters.read_mufun_conversations(tmp_path / "conv.json")
    data[1].pop("audio_start"), data[1].pop("audio_end")
    (tmp_path / "conv.json").write_text(json.dumps(data))
    recs = adapters.read_mufun_conversations(tmp_path / "conv.json")
    assert recs[0].segments == ((0.5, 2.5),) and recs[0].audios == (tmp_path / "song.wav",)
    assert [m.role for m in recs[0].messages] == ["user", "assistant"]
    assert recs[1].segments == (None, None) and len(recs[1].audios) == 2
    kept, report = check_records(recs, "sft", "conv", threshold=0.0)
    assert len(kept) == 2
    data[0]["conversations"][0]["value"] = "What genre is this?"          # marker missing
    (tmp_path / "conv.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="0 <audio> markers"):
        adapters.read_mufun_conversations(tmp_path / "conv.json")


def test_bad_speech_is_counted_by_reason(tmp_path):
    _wav(tmp_path / "ok.wav", 2.0)
    _wav(tmp_path / "short.wav", 0.3)                       # 7 encoder frames
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav")
    rows = [("ok.wav", "fine words")] * 6 + [("missing.wav", "gone"), ("broken.wav", "bad"),
                                             ("ok.wav", "   "), ("ok.wav", "caf\u00e9 \u4e2d"),
                                             ("short.wav", "this sentence is far too long for the clip")]
    (tmp_path / "asr.jsonl").write_text("".join(
        json.dumps({"id": f"u{i}", "audio": a, "text": t, "duration": None, "speaker": ""}) + "\n"
        for i, (a, t) in enumerate(rows)))
    records = read_manifest(tmp_path / "asr.jsonl", "asr")
    with pytest.raises(BadDataError) as err:
        check_records(records, "asr", "asr.jsonl")            # 5 of 11 bad > 1 %
    report = err.value.report
    assert report.total == 11
    assert report.counts() == {EMPTY_TEXT: 1, MISSING_FILE: 1, OUT_OF_VOCAB: 1, TOO_SHORT: 1, UNREADABLE_AUDIO: 1}
    assert "5 bad of 11" in str(err.value) and "missing.wav" in str(err.value)
    kept, report = check_records(records, "asr", "asr.jsonl", threshold=0.5)
    assert [r.id for r in kept] == [f"u{i}" for i in range(6)]


def test_bad_images_are_counted_and_threshold_applies(tmp_path):
    for i in range(99):
        _png(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    lines = [json.dumps({"id": f"i{i}", "image": f"{i}.png", "caption": "red"}) for i in range(99)]
    (tmp_path / "cap.jsonl").write_text("\n".join(lines + [json.dumps({"id": "b", "image": "bad.png",
                                                                       "caption": "red"})]) + "\n")
    records = read_manifest(tmp_path / "cap.jsonl", "caption")
    kept, report = check_records(records, "caption", "cap")          # exactly 1 % bad: allowed
    assert len(kept) == 99 and report.counts() == {UNREADABLE_IMAGE: 1}
    with pytest.raises(BadDataError):
        check_records(records[-50:], "caption", "cap")                # 2 % bad: stop


def test_manifest_errors_name_file_and_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"id": "a", "image": "x.png", "caption": "c"}) + "\n" + json.dumps({"id": "b"}) + "\n")
    with pytest.raises(ManifestError, match=r"m.jsonl:2: caption record has missing keys \['caption', 'image'\]"):
        read_manifest(p, "caption")
    p.write_text(json.dumps({"id": "a", "image": "x.png", "caption": "c", "extra": 1}) + "\n")
    with pytest.raises(ManifestError, match=r"m.jsonl:1: .*unknown keys \['extra'\]"):
        read_manifest(p, "caption")
    p.write_text('{"id": "a", "text": "t", "bits": "high"}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:1: field 'bits' must be float"):
        read_manifest(p, "text")
