"""The ``omni`` command line: ``omni trace``, ``omni tokenizer``, ... .

Each subcommand lives with the code it drives; this file only wires argparse.
Pipelines register their tracer in :data:`TRACE_PIPELINES` as "module:function"
strings, imported on use so ``omni --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name → "module:function" returning an omni.trace.Tracer; each takes **kwargs from the CLI.
TRACE_PIPELINES: dict[str, str] = {
    "text": "omni.pipelines.text:trace_text",
    "image": "omni.pipelines.image:trace_image",
    "audio": "omni.pipelines.audio:trace_audio",
    "multimodal": "omni.pipelines.multimodal:trace_multimodal",
    "mufun": "omni.mufun.dry_run:trace_mufun",
    "tts": "omni.pipelines.tts:trace_tts",
    "talker-train": "omni.pipelines.tts:trace_talker_train",
}

# stage → training script (relative to the repository root) whose main(argv) `omni train <stage>` runs.
TRAIN_STAGES: dict[str, str] = {
    "thinker": "train/thinker.py",
    "audio": "train/audio.py",
    "vision": "train/vision.py",
}


def _load(spec: str):
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def _cmd_trace(args) -> int:
    kwargs = {}
    if args.prompt is not None:
        kwargs["prompt"] = args.prompt
    if args.tokenizer is not None:
        kwargs["tokenizer"] = args.tokenizer
    if args.seconds is not None:
        kwargs["seconds"] = args.seconds
    if args.preset is not None:
        kwargs["preset"] = args.preset
    tr = _load(TRACE_PIPELINES[args.pipeline])(**kwargs)
    if args.json:
        print(tr.to_json())
    else:
        print(f"# omni trace {args.pipeline}\n")
        print(tr.table())
    return 0


def _cmd_tokenizer_train(args) -> int:
    from omni.tokenizer import BPETokenizer

    tok = BPETokenizer.train(args.text, args.out, vocab_size=args.vocab_size)
    print(f"wrote {args.out}: {tok.vocab_size} pieces (asked for at most {args.vocab_size})")
    return 0


def _cmd_data_synth(args) -> int:
    from omni.data.synth import build

    card = build(args.out, size=args.size, seed=args.seed)
    e = card["entropy"]
    print(f"wrote {args.out} ({args.size}, seed {args.seed}): "
          + ", ".join(f"{t} {sum(c.values())}" for t, c in card["counts"].items()))
    print(f"text entropy floor: {e['bits_per_char_exact']} bits/char (see {args.out}/card.md)")
    return 0


def _cmd_data_check(args) -> int:
    from omni.data.quality import BadDataError, load_checked

    try:
        _, report = load_checked(args.manifest, args.task, threshold=args.threshold)
    except BadDataError as e:
        print(e.report.summary())
        return 1
    print(report.summary())
    return 0


def _cmd_train(args) -> int:
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / TRAIN_STAGES[args.stage]
    if not script.is_file():
        raise FileNotFoundError(f"`omni train {args.stage}` runs {script}, which is missing: "
                                f"training scripts live in the repository checkout (install with pip -e)")
    spec = importlib.util.spec_from_file_location(f"train_{args.stage}", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module            # dataclasses in the script look their module up here
    spec.loader.exec_module(module)
    return module.main(args.args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omni", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("trace", help="dry-run a pipeline and print every tensor shape (seed tables)")
    t.add_argument("pipeline", choices=sorted(TRACE_PIPELINES))
    t.add_argument("prompt", nargs="?", default=None, help="text prompt (pipelines that take one)")
    t.add_argument("--tokenizer", default=None, help="SentencePiece .model to tokenize the prompt")
    t.add_argument("--json", action="store_true", help="print records as JSON")
    t.add_argument("--seconds", type=float, default=None, help="audio length to trace (mufun)")
    t.add_argument("--preset", default=None, choices=["mufun", "as-documented"],
                   help="mufun: the real models; as-documented: the seeds' numbers (mufun)")
    t.set_defaults(func=_cmd_trace)

    tk = sub.add_parser("tokenizer", help="train the BPE tokenizer")
    tks = tk.add_subparsers(dest="action", required=True)
    tr = tks.add_parser("train", help="train a SentencePiece BPE model from a text file")
    tr.add_argument("text", help="training text, one sentence a line")
    tr.add_argument("--out", required=True, help="output .model path")
    tr.add_argument("--vocab-size", type=int, default=5000)
    tr.set_defaults(func=_cmd_tokenizer_train)

    d = sub.add_parser("data", help="build the synthetic world; check manifests")
    ds = d.add_subparsers(dest="action", required=True)
    sy = ds.add_parser("synth", help="write the synthetic omni world (text, images, speech, music)")
    sy.add_argument("--out", required=True, help="output folder (must be new or empty)")
    sy.add_argument("--size", default="small", choices=["tiny", "small", "medium", "large"])
    sy.add_argument("--seed", type=int, default=0)
    sy.set_defaults(func=_cmd_data_synth)
    ck = ds.add_parser("check", help="read a manifest and report bad data by reason")
    ck.add_argument("manifest", help="a JSONL manifest")
    ck.add_argument("--task", required=True, choices=["text", "asr", "tts", "caption", "image_qa", "audio_qa", "sft"])
    ck.add_argument("--threshold", type=float, default=0.01, help="largest tolerated bad fraction")
    ck.set_defaults(func=_cmd_data_check)

    tn = sub.add_parser("train", help="train one stage (train/<stage>.py); options after the stage go to it")
    tn.add_argument("stage", choices=sorted(TRAIN_STAGES))
    tn.add_argument("args", nargs=argparse.REMAINDER, help="e.g. --config train/configs/thinker/smoke.json")
    tn.set_defaults(func=_cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. Errors the user can fix (bad input, missing files) are
    printed as one line and exit with status 1; OMNI_DEBUG=1 shows the traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        if os.environ.get("OMNI_DEBUG"):
            raise
        print(f"omni {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
