"""``omni data import FORMAT SRC --out DIR``: real data on disk → a folder every stage reads
with ``--data DIR``, exactly like a synthetic world.

    FORMAT          SRC                                             tasks written
    text            a .txt file, or a folder of them (one item a line)   text (+ corpus_{split}.txt)
    asr-csv         CSV with a header: audio, text [, speaker] columns   asr
    asr-jsonl       JSON lines {"audio", "text" [, "speaker"]}           asr
    librispeech     a folder of <spk>/<chapter>/*.trans.txt + .flac      asr
    ljspeech        a folder with metadata.csv and wavs/                 tts
    coco            captions_*.json (images in --images, default beside) caption, sft
    image-qa-jsonl  JSON lines {"image", "question", "answer"}           image_qa, sft
    mufun           MuFun conversation JSON (<audio> markers, segments)  sft, audio_qa

The steps, each in its own module:

1. read SRC into typed records (:mod:`omni.data.adapters`; a format error names file:line);
2. normalise transcripts to the CTC vocabulary, counting every change (:mod:`omni.data.transcripts`);
3. store media once: audio → 16 kHz mono PCM-16 WAV, images linked (:mod:`omni.data.media`);
4. check every item (:mod:`omni.data.quality`): bad items — a missing or unreadable
   file, an empty or out-of-vocabulary transcript, a clip too short for CTC — are
   kept out of the manifests and listed, by reason, in the card; nothing is dropped
   unreported, and an import where no item survives is an error;
5. split train / val / test by a stable hash (:func:`omni.data.synth.split_of`) of the
   transcript or line of text, or of the image / audio file, so the captions and
   questions of one picture stay in one split;
6. write ``{task}_{split}.jsonl`` (paths relative to DIR), ``tokenizer_corpus.txt`` (all
   train-split text, for the shared tokenizer) and the card (:mod:`omni.data.import_card`).

Image captions and image questions also become one-turn ``sft`` dialogues (the
synthetic world's prompt: ``<image>`` + "describe the picture."), and one-turn,
one-audio MuFun conversations also become ``audio_qa`` items, so these imports
feed the omni SFT and MuFun stages too.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from omni.data import adapters
from omni.data.import_card import write_import_card
from omni.data.manifest import (AUDIO_MARKER, IMAGE_MARKER, AudioQARecord, ManifestError, Message, SftRecord,
                                dumps_row, record_to_row)
from omni.data.media import MediaStore
from omni.data.quality import EMPTY_TEXT, DataReport, check_audio_qa, check_images, check_sft, check_speech
from omni.data.synth import SPLITS, split_of
from omni.data.transcripts import normalize_transcript
from omni.progress import progress_bar

FORMATS = {"text": ("text",), "asr-csv": ("asr",), "asr-jsonl": ("asr",), "librispeech": ("asr",),
           "ljspeech": ("tts",), "coco": ("caption", "sft"), "image-qa-jsonl": ("image_qa", "sft"),
           "mufun": ("sft", "audio_qa")}
CAPTION_PROMPT = "describe the picture."       # the synthetic world's caption turn (omni/data/synth.py)


@dataclass(frozen=True)
class ImportOptions:
    audio_field: str = "audio"            # asr-csv column / asr-jsonl key of the audio path
    text_field: str = "text"              # ... of the transcript
    speaker_field: str | None = None      # ... of the speaker (optional)
    delimiter: str = ","                  # asr-csv only ("\t" for TSV)
    images: str | None = None             # coco: the image folder (default: the JSON's folder)
    audio_root: str | None = None         # mufun: the folder audio paths are relative to (default: the JSON's)


def import_dataset(fmt: str, src: str | os.PathLike, out: str | os.PathLike,
                   options: ImportOptions = ImportOptions(), progress: bool = True) -> dict:
    """Import ``src`` (in ``fmt``) into the new folder ``out``; returns the card (a dict)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; choose one of {sorted(FORMATS)}")
    src, out = Path(src), Path(out)
    if not src.exists():
        raise FileNotFoundError(f"import source not found: {src}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output folder {out} is not empty; choose a new one (imports never mix)")

    primary = _read(fmt, src, options)
    for task, records in primary.items():
        if not records:
            raise ValueError(f"{src}: no {task} items found in this {fmt} source")
        _check_unique_ids(src, task, records)
    out.mkdir(parents=True, exist_ok=True)
    store = MediaStore(_media_root(fmt, src, options), out)
    kept, reports, changes = {}, {}, Counter()
    for task, records in primary.items():
        report = DataReport(f"{src} [{task}]", threshold=1.0)      # the import counts; stages set the threshold
        kept[task] = _store_and_check(task, records, store, report, changes, progress)
        reports[task] = report
    if not any(kept.values()):
        store.remove_unused(set())                              # leave no half-made folder behind
        raise ValueError(f"{src}: every item is bad, nothing to import:\n"
                         + "\n".join(r.summary() for r in reports.values()))
    derived = _derive(fmt, kept)
    all_kept = {**kept, **derived}
    store.remove_unused({p for recs in all_kept.values() for r in recs for p in _media(r)})

    rows = {}
    for task, records in all_kept.items():
        for r in records:
            rows.setdefault((task, split_of(_split_key(task, r))), []).append(record_to_row(r, out))
    for (task, split), task_rows in sorted(rows.items()):
        with (out / f"{task}_{split}.jsonl").open("w", encoding="utf-8", newline="\n") as f:
            f.writelines(dumps_row(row) + "\n" for row in task_rows)
    _write_corpora(out, primary_tasks=list(primary), rows=rows)
    return write_import_card(out, fmt=fmt, src=src, rows=rows, reports=reports, changes=changes, store=store,
                             derived={t: len(v) for t, v in derived.items()},
                             transcripts=sum(len(primary[t]) for t in ("asr", "tts") if t in primary))


# ---------------------------------------------------------------------------
# 1. Read
# ---------------------------------------------------------------------------
def _read(fmt: str, src: Path, o: ImportOptions) -> dict[str, list]:
    if fmt == "text":
        return {"text": adapters.read_text_corpus(src)}
    if fmt == "asr-csv":
        return {"asr": adapters.read_asr_csv(src, o.audio_field, o.text_field, o.speaker_field, o.delimiter)}
    if fmt == "asr-jsonl":
        return {"asr": adapters.read_asr_jsonl(src, o.audio_field, o.text_field, o.speaker_field)}
    if fmt == "librispeech":
        return {"asr": adapters.read_librispeech(src)}
    if fmt == "ljspeech":
        return {"tts": adapters.read_ljspeech(src)}
    if fmt == "coco":
        return {"caption": adapters.read_coco_captions(src, o.images if o.images is not None else src.parent)}
    if fmt == "image-qa-jsonl":
        return {"image_qa": adapters.read_image_qa_jsonl(src)}
    return {"sft": adapters.read_mufun_conversations(src, o.audio_root)}


def _media_root(fmt: str, src: Path, o: ImportOptions) -> Path:
    """The folder the format's media paths are relative to (stored names hash the path from it)."""
    if fmt == "coco" and o.images is not None:
        return Path(o.images)
    if fmt == "mufun" and o.audio_root is not None:
        return Path(o.audio_root)
    return src if src.is_dir() else src.parent


def _check_unique_ids(src: Path, task: str, records: list) -> None:
    seen = Counter(r.id for r in records)
    twice = sorted(i for i, n in seen.items() if n > 1)
    if twice:
        raise ManifestError(f"{src}: {len(twice)} {task} ids appear more than once, e.g. {twice[:3]}; "
                            f"ids must be unique")


# ---------------------------------------------------------------------------
# 2-4. Normalise, store the media, check
# ---------------------------------------------------------------------------
def _store_and_check(task: str, records: list, store: MediaStore, report: DataReport, changes: Counter,
                     progress: bool) -> list:
    if task == "text":
        kept = []
        for r in records:
            if r.text.strip():
                report.ok()
                kept.append(r)
            else:
                report.add_bad(EMPTY_TEXT, r.id, "empty line of text")
        return kept
    stored = []
    for r in progress_bar(records, desc=f"{task}: store media", enabled=progress):
        if task in ("asr", "tts"):
            text, made = normalize_transcript(r.text)
            changes.update(made)
            got = store.audio_file(r.audio)
            if isinstance(got[0], str):
                report.add_bad(got[0], r.id, got[1])
                continue
            stored.append(replace(r, audio=got[0], duration=got[1], text=text))
        elif task in ("caption", "image_qa"):
            got = store.image_file(r.image)
            if isinstance(got, tuple):
                report.add_bad(got[0], r.id, got[1])
                continue
            stored.append(replace(r, image=got))
        else:                                                   # sft (mufun)
            audios, fault = [], None
            for p in r.audios:
                got = store.audio_file(p)
                if isinstance(got[0], str):
                    fault = got
                    break
                audios.append(got[0])
            if fault is not None:
                report.add_bad(fault[0], r.id, fault[1])
                continue
            stored.append(replace(r, audios=tuple(audios)))
    if task in ("asr", "tts"):
        return check_speech(stored, report)
    if task in ("caption", "image_qa"):
        return check_images(stored, report)
    return check_sft(stored, report)


# ---------------------------------------------------------------------------
# Derived tasks: image items as one-turn dialogues; one-turn MuFun conversations as audio QA
# ---------------------------------------------------------------------------
def _derive(fmt: str, kept: dict[str, list]) -> dict[str, list]:
    if fmt == "coco":
        return {"sft": [_image_dialogue(f"caption-{r.id}", CAPTION_PROMPT, r.caption, r.image)
                        for r in kept["caption"]]}
    if fmt == "image-qa-jsonl":
        return {"sft": [_image_dialogue(f"qa-{r.id}", r.question, r.answer, r.image) for r in kept["image_qa"]]}
    if fmt == "mufun":
        qa = []
        for r in kept["sft"]:
            roles = [m.role for m in r.messages]
            if roles == ["user", "assistant"] and len(r.audios) == 1:
                question = r.messages[0].content.replace(AUDIO_MARKER, " ").strip()
                qa.append(AudioQARecord(id=r.id, audio=r.audios[0], question=" ".join(question.split()),
                                        answer=r.messages[1].content, segment=r.segments[0]))
        return {"audio_qa": qa} if qa else {}
    return {}


def _image_dialogue(uid: str, question: str, answer: str, image: Path) -> SftRecord:
    return SftRecord(id=uid, messages=(Message("user", f"{IMAGE_MARKER}\n{question}"), Message("assistant", answer)),
                     images=(image,), audios=(), segments=())


# ---------------------------------------------------------------------------
# 5-6. Split keys, corpora
# ---------------------------------------------------------------------------
def _media(r) -> list[Path]:
    return [p for name in ("audio", "image") if isinstance(p := getattr(r, name, None), Path)] \
        + list(getattr(r, "images", ())) + list(getattr(r, "audios", ()))


def _split_key(task: str, r) -> str:
    """The text an item's split is hashed from: its words, or the media file it is about."""
    if task in ("text", "asr", "tts"):
        return r.text
    media = _media(r)
    return media[0].name if media else r.id


def _texts(task: str, row: dict) -> list[str]:
    if task in ("text", "asr", "tts"):
        return [row["text"]]
    if task == "caption":
        return [row["caption"]]
    if task in ("image_qa", "audio_qa"):
        return [row["question"], row["answer"]]
    return [" ".join(m["content"].replace(IMAGE_MARKER, " ").replace(AUDIO_MARKER, " ").split())
            for m in row["messages"]]


def _write_corpora(out: Path, primary_tasks: list[str], rows: dict) -> None:
    """``corpus_{split}.txt`` for text imports (the Thinker reads these); ``tokenizer_corpus.txt`` always."""
    if "text" in primary_tasks:
        for split in SPLITS:
            lines = [r["text"] for r in rows.get(("text", split), [])]
            if lines:                    # an empty split writes no file, as it writes no manifest
                (out / f"corpus_{split}.txt").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    lines = [t for task in primary_tasks for row in rows.get((task, "train"), []) for t in _texts(task, row)]
    (out / "tokenizer_corpus.txt").write_text("".join(t + "\n" for t in lines if t.strip()), encoding="utf-8")
