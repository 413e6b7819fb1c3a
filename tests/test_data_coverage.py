"""The training dialogues teach every question type, short answer and task that val/test ask."""

import json
from collections import Counter

import pytest

from omni.data.coverage import CoverageError, check_coverage, coverage_errors, question_type, sft_turns
from omni.data.manifest import read_manifest
from stage_world import small_world

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return small_world(tmp_path_factory)


def _rows(world) -> dict:
    rows = {}
    for task in ("image_qa", "audio_qa", "sft"):
        for split in SPLITS:
            with (world / f"{task}_{split}.jsonl").open() as f:
                rows[(task, split)] = [json.loads(line) for line in f]
    return rows


def test_question_types_put_the_scene_words_into_slots():
    assert question_type("what colour is the star?") == "what colour is the {shape}?"
    assert question_type("is there a red circle?") == "is there a {colour} {shape}?"
    assert question_type("is the object on the left small or large?") == "is the object {column} small or large?"
    assert question_type("what shape is in the middle?") == "what shape is {column}?"
    assert question_type("what instrument is playing?") == "what instrument is playing?"


def test_every_image_question_of_every_image_is_a_training_turn(world):
    """All of an image's questions reach sft (the bug: only the first two, so 4 of 6 types never trained)."""
    qa = read_manifest(world / "image_qa_train.jsonl", "image_qa")
    turns = Counter((t, q, a) for t, q, a in sft_turns(_rows(world)[("sft", "train")]) if t == "image-qa")
    asked = Counter(("image-qa", question_type(r.question), r.answer) for r in qa)
    assert turns == asked
    types = Counter(q for _, q, _ in turns.elements())
    assert len(types) == 5 and min(types.values()) >= 0.9 * max(types.values()), types


def test_a_built_world_covers_what_it_tests_and_its_card_counts_types(world):
    rows = _rows(world)
    assert coverage_errors(rows) == []
    card = json.loads((world / "card.json").read_text())
    types = card["question_types"]
    for split in ("val", "test"):
        for r in rows[("image_qa", split)]:
            assert types["sft image-qa"][question_type(r["question"])]["train"] > 0
    n_test = sum(c.get("test", 0) for c in types["image_qa"].values())
    assert n_test == len(rows[("image_qa", "test")])
    assert "## Questions per type" in (world / "card.md").read_text()


def test_a_gap_is_a_named_error(world):
    rows = _rows(world)
    sizes = "is the object {column} small or large?"
    rows[("sft", "train")] = [r for r in rows[("sft", "train")]
                              if not any(question_type(m["content"].split("\n")[-1]) == sizes for m in r["messages"])]
    with pytest.raises(CoverageError, match=r"image_qa_test: question type 'is the object \{column\} small or "
                                            r"large\?' \(\d+ questions\) never occurs in sft_train"):
        check_coverage(rows, where="a world without size questions")

    rows = _rows(world)
    rows[("sft", "train")] = [r for r in rows[("sft", "train")]
                              if not any(m["content"] == "c minor" for m in r["messages"])]
    errors = coverage_errors(rows)
    assert any("answer 'c minor'" in e and "audio-qa" in e for e in errors), errors
