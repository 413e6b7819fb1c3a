"""Does the training data teach what the tests ask? Question types and the coverage check.

A model can only answer a question it was taught to answer. Every image-QA
and audio-QA question has a *type* — its text with the scene's words put back
into slots — and every short answer (one or two words) is a class the model
must be able to produce::

    "what colour is the star?"            → "what colour is the {shape}?"
    "is there a red circle?"              → "is there a {colour} {shape}?"
    "is the object on the left small or large?" → "is the object {column} small or large?"

:func:`coverage_errors` lists, for a build's val and test splits, every
question type, short answer and task that never occurs in the training
dialogues (``sft_train``): what the evaluation would ask of a model that was
never shown it. ``omni data synth`` stops with a :class:`CoverageError` naming
them; :func:`question_type_counts` feeds the dataset card.
"""

from __future__ import annotations

import re
from collections import Counter

from omni.data.language import SCENE_COLOURS, SCENE_SHAPES
from omni.tokenizer import AUDIO_MARKER, IMAGE_MARKER

COLUMN_PHRASES = ("on the left", "in the middle", "on the right")
SHORT_ANSWER_WORDS = 2          # answers of at most this many words are classes every split must share
HELD_OUT = ("val", "test")

_SLOTS = [("{column}", re.compile(r"\b(" + "|".join(COLUMN_PHRASES) + r")\b")),
          ("{colour}", re.compile(r"\b(" + "|".join(SCENE_COLOURS) + r")\b")),
          ("{shape}", re.compile(r"\b(" + "|".join(SCENE_SHAPES) + r")\b"))]


class CoverageError(ValueError):
    """A val/test question type, answer or task that the training dialogues never contain."""


def question_type(question: str) -> str:
    """The question with the scene's words replaced by slots ({column}, {colour}, {shape})."""
    for slot, pattern in _SLOTS:
        question = pattern.sub(slot, question)
    return question


def turn_task(user: str) -> str:
    """Which task a user turn belongs to: image-qa, caption, audio-qa, asr or text."""
    if user.startswith(IMAGE_MARKER):
        return "caption" if user.endswith("describe the picture.") else "image-qa"
    if user.startswith(AUDIO_MARKER):
        return "asr" if user.endswith("what did the speaker say?") else "audio-qa"
    return "text"


def _strip_marker(user: str) -> str:
    for marker in (IMAGE_MARKER, AUDIO_MARKER):
        if user.startswith(marker):
            return user[len(marker):].lstrip("\n")
    return user


def sft_turns(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(task, question type, answer) for every user/assistant pair of sft rows."""
    out = []
    for r in rows:
        msgs = r["messages"]
        for user, reply in zip(msgs[0::2], msgs[1::2]):
            task = turn_task(user["content"])
            out.append((task, question_type(_strip_marker(user["content"])), reply["content"]))
    return out


def question_type_counts(rows: dict[tuple[str, str], list[dict]]) -> dict[str, dict[str, dict[str, int]]]:
    """{task: {question type: {split: count}}} for image_qa, audio_qa and the sft dialogues' turns."""
    counts: dict[str, dict[str, Counter]] = {}
    for (task, split), items in rows.items():
        if task in ("image_qa", "audio_qa"):
            for r in items:
                counts.setdefault(task, {}).setdefault(question_type(r["question"]), Counter())[split] += 1
        elif task == "sft":
            for turn, qtype, _ in sft_turns(items):
                if turn in ("image-qa", "audio-qa"):
                    counts.setdefault(f"sft {turn}", {}).setdefault(qtype, Counter())[split] += 1
    return {task: {q: dict(sorted(c.items())) for q, c in sorted(types.items())} for task, types in sorted(counts.items())}


def coverage_errors(rows: dict[tuple[str, str], list[dict]]) -> list[str]:
    """What val/test ask that sft_train never teaches: question types, short answers, tasks."""
    taught = sft_turns(rows.get(("sft", "train"), []))
    types = {(task, q) for task, q, _ in taught}
    answers = {(task, a) for task, _, a in taught}
    tasks = {task for task, _, _ in taught}
    errors = []
    for split in HELD_OUT:
        for manifest, task in (("image_qa", "image-qa"), ("audio_qa", "audio-qa")):
            missing_types, missing_answers = Counter(), Counter()
            for r in rows.get((manifest, split), []):
                if (task, question_type(r["question"])) not in types:
                    missing_types[question_type(r["question"])] += 1
                if len(r["answer"].split()) <= SHORT_ANSWER_WORDS and (task, r["answer"]) not in answers:
                    missing_answers[r["answer"]] += 1
            errors += [f"{manifest}_{split}: question type {q!r} ({n} questions) never occurs in sft_train"
                       for q, n in sorted(missing_types.items())]
            errors += [f"{manifest}_{split}: answer {a!r} ({n} questions) is never given in sft_train's {task} turns"
                       for a, n in sorted(missing_answers.items())]
        asked = {task for task, _, _ in sft_turns(rows.get(("sft", split), []))}
        errors += [f"sft_{split}: task {t!r} never occurs in sft_train" for t in sorted(asked - tasks)]
    return errors


def check_coverage(rows: dict[tuple[str, str], list[dict]], where: str) -> None:
    """Raise :class:`CoverageError` listing every gap (see :func:`coverage_errors`)."""
    errors = coverage_errors(rows)
    if errors:
        shown = "\n  ".join(errors[:20]) + (f"\n  … and {len(errors) - 20} more" if len(errors) > 20 else "")
        raise CoverageError(f"{where}: the training dialogues do not teach what val/test ask "
                            f"({len(errors)} gaps):\n  {shown}")
