"""The dataset card: what a synthetic build holds, written as JSON and Markdown.

Counts per task and split, hours of audio, bytes on disk, the grammar's
entropy (the floor against which the language model is judged), the
generator version and the seed. Nothing time-dependent goes in, so two builds
with one seed write byte-identical cards.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from omni.data.coverage import question_type_counts
from omni.data.grammar import PUNCT, Grammar, bits_per_char

SPLITS = ("train", "val", "test")


def _folder_bytes(folder: Path) -> tuple[int, int]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return len(files), sum(p.stat().st_size for p in files)


def write_card(out: Path, grammar: Grammar, rows: dict[tuple[str, str], list[dict]], stats: dict,
               size: str, seed: int, version: str) -> dict:
    tasks = sorted({task for task, _ in rows})
    counts = {t: {s: len(rows.get((t, s), [])) for s in SPLITS} for t in tasks}
    held_out = {}
    for split in ("val", "test"):
        texts = [r["text"] for r in rows.get(("text", split), [])]
        held_out[split] = round(bits_per_char(grammar, texts), 6) if texts else None
    exact = grammar.entropy_per_char()
    files = {}
    for sub in ("speech", "images", "sounds"):
        n, b = _folder_bytes(out / sub)
        files[sub] = {"files": n, "bytes": b}
    manifests = sorted(out.glob("*.jsonl"))
    files["manifests"] = {"files": len(manifests), "bytes": sum(p.stat().st_size for p in manifests)}
    card = {
        "generator": version,
        "seed": seed,
        "size": size,
        "counts": counts,
        "question_types": question_type_counts(rows),
        "audio_seconds": {"speech": stats["speech"]["seconds"], "sounds": stats["sounds"]["seconds"]},
        "files": files,
        "entropy": {
            "bits_per_char_exact": round(exact, 6),
            "nats_per_char_exact": round(exact * math.log(2), 6),
            "bits_per_sentence_exact": round(grammar.sentence_entropy(), 6),
            "chars_per_sentence_exact": round(grammar.expected_chars(), 6),
            "bits_per_char_held_out": held_out,
            "note": "characters include the newline ending each sentence; the floor for corpus_*.txt",
        },
        "vocabulary_words": len([w for w in grammar.terminals() if w not in PUNCT]),
        "voices": {k: stats["speech"][k] for k in ("train_voices", "test_voices", "tts_voice", "asr_clips_per_voice")},
        "speech_slowed_for_ctc": stats["speech"]["slowed_for_ctc"],
    }
    (out / "card.json").write_text(json.dumps(card, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    (out / "card.md").write_text(card_markdown(card), encoding="utf-8")
    return card


def card_markdown(card: dict) -> str:
    e = card["entropy"]
    lines = [f"# Synthetic omni world — size `{card['size']}`, seed {card['seed']}", "",
             f"Generator `{card['generator']}`; rebuild with "
             f"`omni data synth --out DIR --size {card['size']} --seed {card['seed']}` (byte-identical).", "",
             "## Manifests (rows per split)", "", "| task | train | val | test |", "|---|---:|---:|---:|"]
    for task, c in card["counts"].items():
        lines.append(f"| {task} | {c['train']} | {c['val']} | {c['test']} |")
    lines += ["", "## Questions per type (rows per split)", "",
              "`image_qa`/`audio_qa` are the QA manifests; `sft image-qa`/`sft audio-qa` count the turns of the "
              "omni dialogues (what omni_sft trains on).", "",
              "| task | question type | train | val | test |", "|---|---|---:|---:|---:|"]
    for task, types in card.get("question_types", {}).items():
        for qtype, c in types.items():
            lines.append(f"| {task} | {qtype} | {c.get('train', 0)} | {c.get('val', 0)} | {c.get('test', 0)} |")
    lines += ["", "## Audio (seconds)", "", "| | train | val | test |", "|---|---:|---:|---:|"]
    for kind, secs in card["audio_seconds"].items():
        lines.append(f"| {kind} | {secs['train']} | {secs['val']} | {secs['test']} |")
    lines += ["", "## Files", "", "| folder | files | bytes |", "|---|---:|---:|"]
    for name, f in card["files"].items():
        lines.append(f"| {name} | {f['files']} | {f['bytes']} |")
    ho = e["bits_per_char_held_out"]
    lines += ["", "## Entropy of the text (the language model's floor)", "",
              f"- exact: **{e['bits_per_char_exact']} bits/char** ({e['nats_per_char_exact']} nats/char) = "
              f"{e['bits_per_sentence_exact']} bits per sentence / {e['chars_per_sentence_exact']} chars per sentence",
              f"- measured on held-out text (Σ −log2 p / Σ chars): val {ho['val']}, test {ho['test']}",
              f"- vocabulary: {card['vocabulary_words']} words; {e['note']}", "",
              "## Voices", "",
              f"- ASR train/val: {', '.join(card['voices']['train_voices'])}",
              f"- ASR test only (never in training): {', '.join(card['voices']['test_voices'])}",
              f"- TTS (all splits): {card['voices']['tts_voice']}",
              f"- clips re-spoken slower to leave CTC 20 % more frames than labels: {card['speech_slowed_for_ctc']}",
              "", "ASR clips per voice and split (a test voice has clips in test only):", "",
              "| voice | role | train | val | test |", "|---|---|---:|---:|---:|"]
    test_voices = set(card["voices"]["test_voices"])
    for voice, c in card["voices"].get("asr_clips_per_voice", {}).items():
        role = "held out" if voice in test_voices else "training"
        lines.append(f"| {voice} | {role} | {c['train']} | {c['val']} | {c['test']} |")
    lines.append("")
    return "\n".join(lines)
