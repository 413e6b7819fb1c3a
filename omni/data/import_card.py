"""The card of an imported folder (``omni data import``), as JSON and Markdown.

What a reader and every stage need to know about the folder: where it came
from, which tasks it holds and which stages it feeds (:mod:`omni.data.folder`),
rows per task and split, hours of audio per split, the speakers, how the media
were stored, every change made to a transcript (counted by kind), and every
bad item found, by reason (the first :data:`MAX_LISTED` listed with where and why).

Real text has no known entropy: ``entropy`` is null, and ``omni eval thinker``
then reports cross-entropy without the floor rows a synthetic world's card allows.
"""

from __future__ import annotations

import json
from pathlib import Path

from omni.data.folder import SPLITS, stages_fed
from omni.data.media import STORED_AUDIO, MediaStore
from omni.data.quality import DataReport

IMPORTER_VERSION = "omni-import-1"
MAX_LISTED = 1000             # bad items listed one by one in card.json (all are counted)
NO_FLOOR = ("real text: the entropy of its language is unknown, so there is no floor to compare against; "
            "`omni eval thinker` reports cross-entropy (bits/char) alone")


def _folder_bytes(folder: Path) -> dict:
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def _speech_stats(rows: dict) -> tuple[dict, dict] | tuple[None, None]:
    speech = {(t, s): r for (t, s), r in rows.items() if t in ("asr", "tts")}
    if not speech:
        return None, None
    seconds = {s: round(sum(x["duration"] for (t, sp), r in speech.items() if sp == s for x in r), 2) for s in SPLITS}
    names = {s: sorted({x["speaker"] for (t, sp), r in speech.items() if sp == s for x in r} - {""}) for s in SPLITS}
    every = sorted(set().union(*names.values()))
    unnamed = sum(1 for r in speech.values() for x in r if not x["speaker"])
    speakers = {"count": len(every), "per_split": {s: len(names[s]) for s in SPLITS}, "names": every[:50],
                "clips_without_speaker": unnamed}
    return seconds, speakers


def write_import_card(out: Path, *, fmt: str, src: Path, rows: dict, reports: dict[str, DataReport],
                      changes, store: MediaStore, derived: dict[str, int], transcripts: int) -> dict:
    tasks = sorted({t for t, _ in rows})
    seconds, speakers = _speech_stats(rows)
    card = {
        "imported": {"format": fmt, "source": str(src.resolve()), "importer": IMPORTER_VERSION},
        "tasks": tasks,
        "stages": stages_fed(tasks),
        "counts": {t: {s: len(rows.get((t, s), [])) for s in SPLITS} for t in tasks},
        "derived": derived,
        "audio": None if not store.audio else {
            "stored_as": STORED_AUDIO, "speech_seconds": seconds,
            "source_formats": dict(sorted(store.source_formats.items())),
            "clips_clipped_to_full_scale": store.clipped},
        "speakers": speakers,
        "images": None if not store.images else {
            "source_modes": dict(sorted(store.image_modes.items())),
            "stored_as": f"{store.linked} hard links, {store.copied} copies"},
        "transcripts": None if not transcripts else {"normalised": transcripts, "changes": dict(sorted(changes.items()))},
        "bad": {t: {"total": r.total, "bad": len(r.bad), "by_reason": r.counts(),
                    "items": [{"reason": b.reason, "where": b.where, "detail": b.detail} for b in r.bad[:MAX_LISTED]]}
                for t, r in sorted(reports.items())},
        "entropy": None,
        "entropy_note": NO_FLOOR if "text" in tasks else None,
        "files": {"audio": _folder_bytes(out / "audio"), "images": _folder_bytes(out / "images"),
                  "manifests": {"files": len(list(out.glob("*.jsonl"))),
                                "bytes": sum(p.stat().st_size for p in out.glob("*.jsonl"))}},
    }
    (out / "card.json").write_text(json.dumps(card, sort_keys=True, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    (out / "card.md").write_text(card_markdown(card), encoding="utf-8")
    return card


def card_markdown(card: dict) -> str:
    imp = card["imported"]
    lines = [f"# Imported data — `{imp['format']}`", "",
             f"From `{imp['source']}` by `omni data import` ({imp['importer']}).", "",
             f"Tasks: {', '.join(card['tasks'])}. Stages it feeds (`--data` this folder): "
             f"**{', '.join(card['stages']) or 'none'}**.", "",
             "## Manifests (rows per split)", "", "| task | train | val | test |", "|---|---:|---:|---:|"]
    for task, c in card["counts"].items():
        lines.append(f"| {task} | {c['train']} | {c['val']} | {c['test']} |")
    if card["derived"]:
        lines += ["", "Derived: " + ", ".join(f"{n} {t} rows from the imported items" for t, n in card["derived"].items())
                  + " (see omni/data/importer.py)."]
    if card["audio"]:
        a = card["audio"]
        lines += ["", "## Audio", "", f"Stored as {a['stored_as']} (converted once at import).", ""]
        if a["speech_seconds"]:
            s = a["speech_seconds"]
            lines += [f"- speech: train {s['train']} s, val {s['val']} s, test {s['test']} s"]
        lines += [f"- source files: " + "; ".join(f"{n} × {k}" for k, n in a["source_formats"].items()),
                  f"- clips clipped to full scale after resampling: {a['clips_clipped_to_full_scale']}"]
    if card["speakers"]:
        sp = card["speakers"]
        lines += ["", "## Speakers", "", f"- {sp['count']} named (train {sp['per_split']['train']}, "
                  f"val {sp['per_split']['val']}, test {sp['per_split']['test']}): {', '.join(sp['names']) or '—'}",
                  f"- clips without a speaker: {sp['clips_without_speaker']}"]
    if card["images"]:
        im = card["images"]
        lines += ["", "## Images", "", f"- source modes: " + ", ".join(f"{k} {n}" for k, n in im["source_modes"].items()),
                  f"- stored as {im['stored_as']}"]
    if card["transcripts"]:
        tr = card["transcripts"]
        lines += ["", "## Transcripts → the CTC vocabulary", "", f"{tr['normalised']} transcripts normalised "
                  "(omni/data/transcripts.py); transcripts changed or flagged, by kind:", ""]
        lines += [f"- {kind}: {n}" for kind, n in tr["changes"].items()] or ["- none changed"]
    lines += ["", "## Bad items (kept out of the manifests)", ""]
    for task, b in card["bad"].items():
        lines.append(f"- {task}: {b['bad']} bad of {b['total']}")
        for reason, n in b["by_reason"].items():
            example = next((x for x in b["items"] if x["reason"] == reason), None)
            lines.append(f"  - {n} × {reason}" + (f", e.g. {example['where']}: {example['detail']}" if example else ""))
    if card["entropy_note"]:
        lines += ["", "## Entropy", "", f"None known: {card['entropy_note']}."]
    return "\n".join(lines) + "\n"
