"""What a data folder holds and which training stages it can feed.

A data folder — a synthetic world (``omni data synth``) or an import
(``omni data import``) — holds one ``{task}_{split}.jsonl`` manifest per task
and split (``text`` also as ``corpus_{split}.txt``). :data:`STAGE_TASKS` is
the one table of what each stage reads; the importer writes
:func:`stages_fed` into the card, and a stage given a folder without its task
gets :func:`missing_task_message`::

    data/books has no asr manifests: it was imported as text from /corpora/books;
    stages it feeds: thinker
"""

from __future__ import annotations

import json
import re
from pathlib import Path

SPLITS = ("train", "val", "test")

# stage → the manifest tasks it trains on; a stage is fed when the folder has ANY of them
STAGE_TASKS: dict[str, tuple[str, ...]] = {
    "thinker": ("text",),
    "audio": ("asr",),
    "vision": ("caption",),
    "codec": ("tts", "asr"),           # speech-mel frames of any speech
    "vocoder": ("tts", "asr"),         # (speech mel, waveform) pairs of any speech, all voices
    "talker": ("tts",),
    "omni_sft": ("sft",),
    "mufun": ("audio_qa",),
}
_MANIFEST = re.compile(r"^(?P<task>[a-z_]+)_(?P<split>train|val|test)\.jsonl$")
_CORPUS = re.compile(r"^corpus_(?P<split>train|val|test)\.txt$")


def file_task(name: str) -> tuple[str, str] | None:
    """(task, split) that a world file name stands for: ``asr_val.jsonl`` → ("asr", "val"),
    ``corpus_train.txt`` → ("text", "train"); None for other files (card.json, tokenizer_corpus.txt)."""
    m = _MANIFEST.match(name)
    if m:
        return m["task"], m["split"]
    m = _CORPUS.match(name)
    return ("text", m["split"]) if m else None


def folder_tasks(folder: str | Path) -> list[str]:
    """Tasks with at least one manifest in ``folder`` (sorted)."""
    return sorted({t[0] for p in Path(folder).glob("*.jsonl") if (t := file_task(p.name)) is not None})


def stages_fed(tasks) -> list[str]:
    """Stages (in :data:`STAGE_TASKS` order) that ``tasks`` can feed."""
    tasks = set(tasks)
    return [stage for stage, needs in STAGE_TASKS.items() if tasks & set(needs)]


def describe(folder: str | Path) -> str:
    """How the folder was made, from its card: "it was imported as FORMAT from SRC", or a synthetic world."""
    card_path = Path(folder) / "card.json"
    if not card_path.is_file():
        return "it has no card.json (neither `omni data synth` nor `omni data import` wrote it)"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if "imported" in card:
        return f"it was imported as {card['imported']['format']} from {card['imported']['source']}"
    return f"it is a synthetic world (size {card.get('size')!r}, seed {card.get('seed')!r})"


def no_task_message(folder: str | Path, wanted) -> str:
    """"DIR has no asr manifests: it was imported as text from SRC; stages it feeds: thinker"."""
    stages = ", ".join(stages_fed(folder_tasks(folder))) or "none"
    return f"{folder} has no {' or '.join(wanted)} manifests: {describe(folder)}; stages it feeds: {stages}"


def missing_task_message(folder: str | Path, name: str) -> str:
    """Why ``folder/name`` is missing, in the folder's own terms (which tasks and stages it has)."""
    folder = Path(folder)
    tasks = folder_tasks(folder)
    what = file_task(name)
    stages = ", ".join(stages_fed(tasks)) or "none"
    if what is None:
        return f"{folder} has no {name}: {describe(folder)}; it holds tasks {tasks or 'none'}"
    task, split = what
    if task not in tasks:
        return no_task_message(folder, [task])
    return (f"{folder} has {task} manifests but no {name}: its {split} split is empty "
            f"(the split is a hash of each item; see {folder / 'card.md'}); stages it feeds: {stages}")
