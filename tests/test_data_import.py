"""``omni data import``: each real layout (built here, tests/real_layouts.py) → a world-layout folder
with a truthful card; the bad cases counted or named; and every stage's smoke preset trains on an import."""

import json
import re

import pytest
import soundfile as sf

import real_layouts as layouts
from omni.cli import main as omni_main
from omni.data.folder import file_task, folder_tasks, stages_fed
from omni.data.importer import ImportOptions, import_dataset
from omni.data.manifest import ManifestError, read_manifest
from omni.data.quality import MISSING_FILE, UNREADABLE_AUDIO
from omni.data.transcripts import DIGITS, FOLDED, LOWERED, SPACES, normalize_transcript
from omni.evaluation.thinker import evaluate as eval_thinker
from stage_world import ROOT, run_stage

SPLITS = ("train", "val", "test")
FAST = ["--max-steps", "2", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """One source folder per layout."""
    root = tmp_path_factory.mktemp("real")
    return {"librispeech": layouts.librispeech(root / "LibriSpeech" / "dev-clean"),
            "ljspeech": layouts.ljspeech(root / "LJSpeech-1.1"),
            "asr-jsonl": layouts.asr_jsonl(root / "nemo"),
            "asr-csv": layouts.asr_csv(root / "csv"),
            "text": layouts.text_folder(root / "books"),
            "coco": layouts.coco(root / "coco"),
            "image-qa-jsonl": layouts.image_qa(root / "vqa"),
            "mufun": layouts.mufun(root / "mufun")}


OPTIONS = {"asr-jsonl": ImportOptions(audio_field="audio_filepath", speaker_field="speaker")}


@pytest.fixture(scope="module")
def imported(src, tmp_path_factory):
    """format → (folder, card) of its import."""
    out = tmp_path_factory.mktemp("imported")
    done = {}
    for fmt, path in src.items():
        opts = OPTIONS.get(fmt, ImportOptions(images=str(path.parents[1] / "images")) if fmt == "coco"
                           else ImportOptions())
        done[fmt] = (out / fmt, import_dataset(fmt, path, out / fmt, opts, progress=False))
    return done


def counts(card, task):
    return [card["counts"][task][s] for s in SPLITS]


# ---------------------------------------------------------------------------
# Transcripts and folders
# ---------------------------------------------------------------------------
def test_normalize_transcript_counts_each_kind_of_change():
    text, changes = normalize_transcript("  CAF\u00c9 \u201cOK\u201d \u2013 n\u00e9e\u2026\tRoom  101 ")
    assert text == 'cafe "ok" - nee... room 101'
    assert changes == [FOLDED, LOWERED, SPACES, DIGITS]
    assert normalize_transcript("don\u2019t stop \u2014 now") == ("don\u2019t stop \u2014 now", [])   # in the vocabulary
    assert normalize_transcript("\u4f60\u597d")[0] == "\u4f60\u597d"           # left for the vocabulary check


def test_folder_tasks_and_stages():
    assert file_task("asr_val.jsonl") == ("asr", "val") and file_task("audio_qa_train.jsonl") == ("audio_qa", "train")
    assert file_task("corpus_test.txt") == ("text", "test") and file_task("card.json") is None
    assert stages_fed(["text"]) == ["thinker"]
    assert stages_fed(["caption", "sft"]) == ["vision", "omni_sft"]
    assert stages_fed(["tts"]) == ["codec", "vocoder", "talker"]


# ---------------------------------------------------------------------------
# Each layout
# ---------------------------------------------------------------------------
def test_librispeech_flac_tree(imported):
    folder, card = imported["librispeech"]
    assert card["tasks"] == ["asr"] and card["stages"] == ["audio", "codec", "vocoder"]
    assert counts(card, "asr") == [10, 2, 2]
    assert card["transcripts"] == {"normalised": 14, "changes": {LOWERED: 14}}
    assert card["speakers"]["count"] == 2 and card["speakers"]["names"] == ["19", "26"]
    assert card["audio"]["speech_seconds"] == {"train": 25.0, "val": 5.0, "test": 5.0}
    assert card["audio"]["source_formats"] == {"FLAC PCM_16 16000 Hz 1 ch": 14}
    recs = read_manifest(folder / "asr_train.jsonl", "asr")
    assert all(r.text == r.text.lower() and r.speaker in ("19", "26") for r in recs)
    info = sf.info(str(recs[0].audio))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (16_000, 1, "PCM_16", "WAV")
    assert recs[0].audio.parent == folder / "audio" and "card.md" in {p.name for p in folder.iterdir()}


def test_ogg_stereo_48k_and_wav_float_24bit_are_converted_to_16k_mono(imported):
    for fmt, want in (("asr-jsonl", {"OGG VORBIS 48000 Hz 2 ch": 14}),
                      ("asr-csv", {"WAV FLOAT 44100 Hz 1 ch": 7, "WAV PCM_24 44100 Hz 1 ch": 7})):
        folder, card = imported[fmt]
        assert card["audio"]["source_formats"] == want, fmt
        assert counts(card, "asr") == [10, 2, 2]
        for r in read_manifest(folder / "asr_val.jsonl", "asr"):
            info = sf.info(str(r.audio))
            assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
            assert abs(info.frames / 16_000 - 2.5) < 0.01 and r.duration == pytest.approx(2.5, abs=0.01)
    assert imported["asr-jsonl"][1]["speakers"]["count"] == 3
    assert imported["asr-csv"][1]["speakers"] == {"count": 0, "per_split": {"train": 0, "val": 0, "test": 0},
                                                  "names": [], "clips_without_speaker": 14}


def test_ljspeech_reads_the_normalised_column_into_tts(imported):
    folder, card = imported["ljspeech"]
    assert card["tasks"] == ["tts"] and card["stages"] == ["codec", "vocoder", "talker"]
    assert counts(card, "tts") == [10, 2, 3]
    texts = [r.text for s in SPLITS for r in read_manifest(folder / f"tts_{s}.jsonl", "tts")]
    assert texts and not any(re.search(r"no\. \d", t) for t in texts) and card["speakers"]["names"] == ["LJ"]
    assert card["audio"]["source_formats"] == {"WAV PCM_16 22050 Hz 1 ch": 15}


def test_text_folder_feeds_the_thinker_without_an_entropy_floor(imported, src):
    folder, card = imported["text"]
    assert card["tasks"] == ["text"] and card["stages"] == ["thinker"]
    assert sum(counts(card, "text")) == 800 and card["entropy"] is None and "no floor" in card["entropy_note"]
    for s in SPLITS:
        lines = (folder / f"corpus_{s}.txt").read_text().splitlines()
        assert len(lines) == card["counts"]["text"][s] and all(lines)
    assert (folder / "tokenizer_corpus.txt").read_text().splitlines() == \
        (folder / "corpus_train.txt").read_text().splitlines()
    assert "None known" in (folder / "card.md").read_text()


def test_coco_captions_and_images_of_any_mode(imported):
    folder, card = imported["coco"]
    assert card["tasks"] == ["caption", "sft"] and card["stages"] == ["vision", "omni_sft"]
    assert counts(card, "caption") == [20, 6, 4] and counts(card, "sft") == [20, 6, 4]
    assert card["images"]["source_modes"] == {"CMYK": 2, "L": 3, "LA": 2, "P": 2, "RGB": 3, "RGBA": 3}
    split_of_image = {}
    for s in SPLITS:
        for r in read_manifest(folder / f"caption_{s}.jsonl", "caption"):
            assert split_of_image.setdefault(r.image, s) == s, f"{r.image} in two splits"
            assert r.caption == r.caption.strip()
    sft = read_manifest(folder / "sft_train.jsonl", "sft")
    assert sft[0].messages[0].content == "<image>\ndescribe the picture." and len(sft[0].images) == 1


def test_image_qa_jsonl_becomes_image_qa_and_sft(imported):
    folder, card = imported["image-qa-jsonl"]
    assert counts(card, "image_qa") == [12, 4, 2] and counts(card, "sft") == [12, 4, 2]
    assert card["stages"] == ["omni_sft"]
    qa = read_manifest(folder / "image_qa_val.jsonl", "image_qa")
    assert {r.question for r in qa} == {"what colour is the shape?", "how many shapes are there?"}


def test_mufun_conversations_become_sft_and_one_turn_audio_qa(imported):
    folder, card = imported["mufun"]
    assert card["stages"] == ["omni_sft", "mufun"]
    assert counts(card, "sft") == [8, 2, 1] and sum(counts(card, "audio_qa")) == 10     # the two-turn one: sft only
    qa = {r.id: r for s in SPLITS for r in read_manifest(folder / f"audio_qa_{s}.jsonl", "audio_qa")}
    assert "m0" not in qa and qa["m1"].segment == (0.5, 2.5) and qa["m2"].segment is None
    assert qa["m1"].question == "what instrument plays?"
    assert sf.info(str(qa["m1"].audio)).samplerate == 16_000


# ---------------------------------------------------------------------------
# Bad cases: counted, or a named error
# ---------------------------------------------------------------------------
def test_missing_and_unreadable_clips_are_counted_and_listed(tmp_path):
    root = layouts.librispeech(tmp_path / "libri")
    trans = root / "26" / "495" / "26-495.trans.txt"
    trans.write_text(trans.read_text() + "26-495-9999 A LINE FOR A FILE THAT IS NOT THERE\n")
    broken = sorted((root / "26" / "495").glob("*.flac"))[0]
    broken.write_bytes(b"this is not audio" * 10)
    card = import_dataset("librispeech", root, tmp_path / "out", progress=False)
    bad = card["bad"]["asr"]
    assert (bad["total"], bad["bad"]) == (15, 2)
    assert bad["by_reason"] == {MISSING_FILE: 1, UNREADABLE_AUDIO: 1}
    where = {b["reason"]: b for b in bad["items"]}
    assert where[MISSING_FILE]["where"] == "26-495-9999" and "26-495-9999.flac" in where[MISSING_FILE]["detail"]
    assert broken.stem == where[UNREADABLE_AUDIO]["where"]
    assert sum(counts(card, "asr")) == 13
    kept = {r.id for s in SPLITS for r in read_manifest(tmp_path / "out" / f"asr_{s}.jsonl", "asr")}
    assert "26-495-9999" not in kept and broken.stem not in kept
    assert len(list((tmp_path / "out" / "audio").iterdir())) == 13          # no stored file of a bad item
    assert "1 × missing file" in (tmp_path / "out" / "card.md").read_text()


def test_an_image_id_with_no_file_is_counted_and_an_unknown_id_is_named(tmp_path):
    ann = layouts.coco(tmp_path / "coco")
    images = tmp_path / "coco" / "images"
    data = json.loads(ann.read_text())
    data["images"].append({"id": 999, "file_name": "gone.jpg"})
    data["annotations"].append({"id": 5, "image_id": 999, "caption": "a picture that is not there"})
    ann.write_text(json.dumps(data))
    card = import_dataset("coco", ann, tmp_path / "out", ImportOptions(images=str(images)), progress=False)
    assert card["bad"]["caption"]["by_reason"] == {MISSING_FILE: 1}
    assert card["bad"]["caption"]["items"][0]["where"] == "5"
    data["annotations"].append({"id": 6, "image_id": 12345, "caption": "no such image id"})
    ann.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"annotations\[\d+\] names image_id 12345"):
        import_dataset("coco", ann, tmp_path / "out2", ImportOptions(images=str(images)), progress=False)


def test_empty_folders_and_all_bad_sources_are_named_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*\.trans\.txt files under .*empty"):
        import_dataset("librispeech", empty, tmp_path / "o1", progress=False)
    with pytest.raises(FileNotFoundError, match=r"no \*\.txt files under"):
        import_dataset("text", empty, tmp_path / "o2", progress=False)
    with pytest.raises(FileNotFoundError, match="no metadata.csv"):
        import_dataset("ljspeech", empty, tmp_path / "o3", progress=False)
    (empty / "clips.csv").write_text("audio,text\nnope.wav,hello there\n")
    with pytest.raises(ValueError, match=r"(?s)every item is bad.*missing file"):
        import_dataset("asr-csv", empty / "clips.csv", tmp_path / "o4", progress=False)
    assert not any((tmp_path / "o4").iterdir())                  # nothing half-made left behind
    with pytest.raises(ManifestError, match="no column 'transcript'"):
        import_dataset("asr-csv", empty / "clips.csv", tmp_path / "o5", ImportOptions(text_field="transcript"))
    (tmp_path / "o6").mkdir()
    (tmp_path / "o6" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        import_dataset("text", empty, tmp_path / "o6", progress=False)


def test_cli_prints_counts_changes_and_stages_with_plain_progress_lines(src, tmp_path, capsys):
    assert omni_main(["data", "import", "librispeech", str(src["librispeech"]), "--out", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    assert "asr 10/2/2 (train/val/test)" in out and "changes: 14 lower-cased" in out
    assert "stages it feeds: audio, codec" in out
    assert "\r" not in err and "asr: store media" in err            # stderr is not a terminal here


# ---------------------------------------------------------------------------
# Every stage's smoke preset trains on an import; a stage given the wrong folder says why
# ---------------------------------------------------------------------------
def smoke(stage: str, folder, out, *extra) -> None:
    argv = ["--config", str(ROOT / f"train/configs/{stage}/smoke.json"), "--data", str(folder), "--out", str(out)]
    assert run_stage(stage, argv + FAST + list(extra)) == 0
    assert (out / "export" / "model.safetensors").is_file()


def test_thinker_trains_on_text_and_evaluates_without_floor_rows(imported, tmp_path):
    folder, _ = imported["text"]
    smoke("thinker", folder, tmp_path / "thinker")
    metrics = eval_thinker(tmp_path / "thinker" / "export", folder, split="test")
    names = [m.name for m in metrics]
    assert names == ["cross-entropy (test, 91 lines; no entropy floor: real text)", "cross-entropy per token"], names
    assert all(m.goal == "" and m.met is None for m in metrics) and metrics[0].value > 0


def test_audio_vision_stages_train_and_evaluate_on_speech_and_caption_imports(imported, tmp_path):
    from omni.evaluation.audio import evaluate as eval_audio
    from omni.evaluation.vision import evaluate as eval_vision

    smoke("audio", imported["librispeech"][0], tmp_path / "audio")
    smoke("audio", imported["asr-jsonl"][0], tmp_path / "audio-ogg")
    smoke("vision", imported["coco"][0], tmp_path / "vision")
    cer = eval_audio(tmp_path / "audio" / "export", imported["librispeech"][0], split="test")
    assert cer and all(m.value >= 0 for m in cer), cer
    top1 = eval_vision(tmp_path / "vision" / "export", imported["coco"][0], split="test")
    assert top1 and all(0 <= m.value for m in top1), top1


def test_codec_and_talker_train_on_ljspeech(imported, tmp_path):
    folder, _ = imported["ljspeech"]
    smoke("codec", folder, tmp_path / "codec")
    smoke("talker", folder, tmp_path / "talker", "--codec", str(tmp_path / "codec" / "export"))


def test_omni_sft_and_mufun_train_on_image_qa_and_mufun_imports(imported, tmp_path):
    smoke("omni_sft", imported["image-qa-jsonl"][0], tmp_path / "sft-image", "--from-scratch")
    smoke("omni_sft", imported["mufun"][0], tmp_path / "sft-audio", "--from-scratch")
    smoke("mufun", imported["mufun"][0], tmp_path / "mufun", "--stage", "warmup", "--from-scratch")


def test_a_stage_given_a_folder_without_its_task_says_what_the_folder_feeds(imported, tmp_path):
    text, _ = imported["text"]
    with pytest.raises(FileNotFoundError, match=r"has no asr manifests: it was imported as text from .*books; "
                                                r"stages it feeds: thinker"):
        smoke("audio", text, tmp_path / "a")
    coco, _ = imported["coco"]
    with pytest.raises(FileNotFoundError, match=r"has no tts or asr manifests: it was imported as coco .*"
                                                r"stages it feeds: vision, omni_sft"):
        smoke("codec", coco, tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="has no text manifests: it was imported as librispeech"):
        smoke("thinker", imported["librispeech"][0], tmp_path / "t")
    assert folder_tasks(coco) == ["caption", "sft"]
