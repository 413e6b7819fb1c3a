"""The synthetic world on disk: determinism, held-out splits, manifests that read back."""

import json

import pytest

from omni.data import speech
from omni.data.manifest import TASKS, read_manifest
from omni.data.quality import load_checked
from omni.data.synth import SPLITS, build, split_of


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "world"
    card = build(out, size="small", seed=0, progress=False)
    return out, card


def test_small_build_is_byte_identical_for_one_seed(small, tmp_path):
    out, _ = small
    again = tmp_path / "again"
    build(again, size="small", seed=0, progress=False)
    a, b = _files(out), _files(again)
    assert sorted(a) == sorted(b)
    different = [name for name in a if a[name] != b[name]]
    assert not different, f"differ between two builds with seed 0: {different[:5]}"


def test_other_seed_gives_other_data(small, tmp_path):
    other = tmp_path / "other"
    build(other, size="tiny", seed=1, progress=False)
    out, _ = small
    assert (other / "text_train.jsonl").read_bytes()[:200] != (out / "text_train.jsonl").read_bytes()[:200]


def test_every_manifest_reads_back_and_passes_checks(small):
    out, card = small
    for task in TASKS:
        for split in SPLITS:
            path = out / f"{task}_{split}.jsonl"
            if card["counts"][task][split] == 0:
                assert not path.exists()
                continue
            records = read_manifest(path, task)
            assert len(records) == card["counts"][task][split]
            kept, report = load_checked(path, task, threshold=0.0)
            assert len(kept) == len(records) and not report.bad


def test_held_out_splits_do_not_leak(small):
    out, _ = small
    rows = lambda task, split: [json.loads(l) for l in (out / f"{task}_{split}.jsonl").read_text().splitlines()]  # noqa
    for task, key in (("text", "text"), ("asr", "text"), ("caption", "caption")):
        train = {r[key] for r in rows(task, "train")}
        for split in ("val", "test"):
            held = {r[key] for r in rows(task, split)}
            assert not train & held, f"{task} {split} leaks into train"
            assert all(split_of(t) == split for t in held)
    # the test voice is never heard in train or val, and test is spoken only by it
    for split in ("train", "val"):
        assert not {r["speaker"] for r in rows("asr", split)} & set(speech.TEST_VOICES)
    assert {r["speaker"] for r in rows("asr", "test")} <= set(speech.TEST_VOICES)
    # sft media of a split come from that split only
    test_images = {r["image"] for r in rows("caption", "test")}
    for r in rows("sft", "train"):
        assert not set(r["images"]) & test_images


def test_card_reports_entropy_counts_and_seed(small):
    out, card = small
    on_disk = json.loads((out / "card.json").read_text())
    assert on_disk == card
    assert card["seed"] == 0 and card["size"] == "small" and card["generator"]
    e = card["entropy"]
    assert 0.3 < e["bits_per_char_exact"] < 2.0
    assert e["bits_per_char_held_out"]["test"] == pytest.approx(e["bits_per_char_exact"], rel=0.25)
    assert card["audio_seconds"]["speech"]["train"] > 10
    assert "bits/char" in (out / "card.md").read_text()
    corpus = (out / "corpus_train.txt").read_text().splitlines()
    assert len(corpus) == card["counts"]["text"]["train"]
    assert (out / "tokenizer_corpus.txt").stat().st_size > 0


def test_sft_dialogues_mix_modalities(small):
    out, _ = small
    recs = read_manifest(out / "sft_train.jsonl", "sft")
    assert any(r.images for r in recs) and any(r.audios for r in recs)
    assert any(not r.images and not r.audios for r in recs)
    assert any(len(r.messages) == 4 for r in recs)


def test_refuses_non_empty_output(tmp_path):
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        build(tmp_path, size="tiny", seed=0, progress=False)
