"""``omni data import FORMAT SRC --out DIR``: the command over :func:`omni.data.importer.import_dataset`."""

from __future__ import annotations

import argparse

from omni.data.importer import FORMATS, ImportOptions, import_dataset


def add_import_parser(sub) -> None:
    """``omni data import`` under the ``omni data`` subcommands."""
    p = sub.add_parser("import", help="turn a real dataset on disk into a folder every stage reads with --data",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="formats and what they feed: " + "; ".join(f"{f} → {', '.join(t)}"
                                                                         for f, t in FORMATS.items()))
    p.add_argument("format", choices=list(FORMATS))
    p.add_argument("src", help="the dataset file or folder (see docs/data.md, 'Train on your own data')")
    p.add_argument("--out", required=True, help="output folder (must be new or empty)")
    p.add_argument("--audio-field", default="audio", help="asr-csv column / asr-jsonl key of the audio path")
    p.add_argument("--text-field", default="text", help="asr-csv column / asr-jsonl key of the transcript")
    p.add_argument("--speaker-field", default=None, help="asr-csv column / asr-jsonl key of the speaker")
    p.add_argument("--delimiter", default=",", help="asr-csv field separator (use $'\\t' for TSV)")
    p.add_argument("--images", default=None, help="coco: folder of the images (default: the JSON's folder)")
    p.add_argument("--audio-root", default=None, help="mufun: folder the audio paths are relative to "
                                                      "(default: the JSON's folder)")
    p.set_defaults(func=cmd_import)


def cmd_import(args) -> int:
    options = ImportOptions(audio_field=args.audio_field, text_field=args.text_field,
                            speaker_field=args.speaker_field, delimiter=args.delimiter, images=args.images,
                            audio_root=args.audio_root)
    card = import_dataset(args.format, args.src, args.out, options)
    print(f"wrote {args.out} ({args.format} from {args.src}): "
          + ", ".join(f"{t} {c['train']}/{c['val']}/{c['test']}" for t, c in card["counts"].items())
          + " (train/val/test)")
    for task, b in card["bad"].items():
        reasons = ", ".join(f"{n} {r}" for r, n in b["by_reason"].items())
        print(f"bad {task} items kept out: {b['bad']} of {b['total']}" + (f" ({reasons})" if reasons else ""))
    if card["transcripts"]:
        changed = ", ".join(f"{n} {k}" for k, n in card["transcripts"]["changes"].items()) or "none"
        print(f"transcripts normalised: {card['transcripts']['normalised']}; changes: {changed}")
    if card["audio"] and card["audio"]["speech_seconds"]:
        s = card["audio"]["speech_seconds"]
        print(f"speech: {s['train']} s train, {s['val']} s val, {s['test']} s test, "
              f"speakers named: {card['speakers']['count']}; stored as {card['audio']['stored_as']}")
    empty = [f"{t} {s}" for t, c in card["counts"].items() for s, n in c.items() if n == 0]
    if empty:
        print(f"note: empty splits ({', '.join(empty)}): a stage that reads one stops and names it")
    print(f"stages it feeds: {', '.join(card['stages']) or 'none'} (see {args.out}/card.md)")
    return 0
