"""The ``omni`` command line: ``omni trace``, ``omni tokenizer``, ... .

Each subcommand lives with the code it drives; this file only wires argparse.
Pipelines register their tracer in :data:`TRACE_PIPELINES` as "module:function"
strings, imported on use so ``omni --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name → "module:function" returning an omni.trace.Tracer; each takes **kwargs from the CLI.
TRACE_PIPELINES: dict[str, str] = {
    "text": "omni.pipelines.text:trace_text",
    "tts": "omni.pipelines.tts:trace_tts",
    "talker-train": "omni.pipelines.tts:trace_talker_train",
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omni", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("trace", help="dry-run a pipeline and print every tensor shape (seed tables)")
    t.add_argument("pipeline", choices=sorted(TRACE_PIPELINES))
    t.add_argument("prompt", nargs="?", default=None, help="text prompt (pipelines that take one)")
    t.add_argument("--tokenizer", default=None, help="SentencePiece .model to tokenize the prompt")
    t.add_argument("--json", action="store_true", help="print records as JSON")
    t.set_defaults(func=_cmd_trace)

    tk = sub.add_parser("tokenizer", help="train the BPE tokenizer")
    tks = tk.add_subparsers(dest="action", required=True)
    tr = tks.add_parser("train", help="train a SentencePiece BPE model from a text file")
    tr.add_argument("text", help="training text, one sentence a line")
    tr.add_argument("--out", required=True, help="output .model path")
    tr.add_argument("--vocab-size", type=int, default=5000)
    tr.set_defaults(func=_cmd_tokenizer_train)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
