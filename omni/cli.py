"""The ``omni`` command line: ``omni trace``, ``omni tokenizer``, ... .

Each subcommand lives with the code it drives; this file only wires argparse.
The inference commands (chat, asr, tts, mufun) are in omni/commands/infer.py,
``omni eval`` in omni/commands/eval.py; the pipelines ``omni trace`` runs are
listed in :data:`omni.traces.TRACE_PIPELINES`, the stages ``omni train`` and
``omni eval`` know in :data:`omni.stages.STAGES`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from omni import demo
from omni.commands import eval as eval_cmd
from omni.commands import infer
from omni.commands.data_import import add_import_parser
from omni.demo_args import add_demo_arguments
from omni.docs_build import DOCS_DIR
from omni.docs_stepthrough import build as build_docs
from omni.stages import STAGES
from omni.traces import TRACE_PIPELINES


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
    tr = TRACE_PIPELINES[args.pipeline](**kwargs)
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
    return STAGES[args.stage].train(args.args)


def _add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="sample within the smallest set of mass ≥ p")
    p.add_argument("--max-tokens", type=int, default=64, help="most new tokens to generate")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same answer)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")


def _add_dtype(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="compute precision, by autocast (auto: bf16 or fp16 on a GPU, fp32 on the CPU)")


def _add_compile(p) -> None:
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model's transformer blocks (announced first; the first call compiles)")


def _add_inference(sub) -> None:
    c = sub.add_parser("chat", help="ask the omni model (omni_sft export) a question, streaming the answer")
    c.add_argument("question", nargs="+",
                   help="the question; <image>/<audio> markers place the media (default: in front). Several "
                        "questions are one conversation, asked in turn: each places its own media with markers")
    c.add_argument("--image", action="append", metavar="PATH", help="an image file (repeat for more)")
    c.add_argument("--audio", action="append", metavar="PATH", help="an audio file (repeat for more)")
    c.add_argument("--ckpt", default=None, help="export folder (default checkpoints/omni_sft/export, "
                                                "or checkpoints/thinker/export with --text-only)")
    c.add_argument("--text-only", action="store_true", help="use the thinker export: text in, text out")
    _add_sampling(c)
    _add_dtype(c)
    _add_compile(c)
    c.add_argument("--fast-decode", action="store_true",
                   help="decode through omni.nn.fast_decode (fp32; same tokens as eager, faster at batch 1; announced)")
    c.set_defaults(func=infer.cmd_chat)

    a = sub.add_parser("asr", help="transcribe an audio file with the audio export (ASRModel)")
    a.add_argument("audio", help="audio file (any rate/channels soundfile reads; resampled to 16 kHz mono)")
    a.add_argument("--ckpt", default=None, help="export folder (default checkpoints/audio/export)")
    a.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    _add_dtype(a)
    _add_compile(a)
    a.set_defaults(func=infer.cmd_asr)

    t = sub.add_parser("tts", help="speak text into a wav file with the talker and codec exports")
    t.add_argument("text", help="what to say")
    t.add_argument("-o", "--out", required=True, help="output .wav path")
    t.add_argument("--talker", default=None, help="talker export folder (default checkpoints/talker/export)")
    t.add_argument("--codec", default=None, help="codec export folder (default checkpoints/codec/export)")
    t.add_argument("--vocoder", default=None, choices=infer.VOCODERS,
                   help="default: learned when its export exists, else griffin-lim (the first line says which)")
    t.add_argument("--vocoder-ckpt", default=None,
                   help="learned vocoder export folder (default checkpoints/vocoder/export)")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    _add_dtype(t)
    _add_compile(t)
    t.set_defaults(func=infer.cmd_tts)

    m = sub.add_parser("mufun", help="ask MuFun about a piece of audio (local full-size checkpoints only)")
    m.add_argument("question", help="the question; an <audio> marker places the audio (default: in front)")
    m.add_argument("--audio", required=True, help="audio file")
    m.add_argument("--segment", type=float, nargs=2, metavar=("START", "END"), help="use [START, END] seconds")
    m.add_argument("--whisper", default=None, help="local openai/whisper-large-v3 folder")
    m.add_argument("--qwen", default=None, help="local Qwen/Qwen3-8B-Base folder")
    m.add_argument("--connector", default=None, help="BLP connector .safetensors file")
    m.add_argument("--tokenizer", default=None, help="folder with tokenizer.json (default: the --qwen folder)")
    m.add_argument("--eos", default="<|endoftext|>", help="end-of-text token of the tokenizer")
    m.add_argument("--feature-layers", type=int, nargs="+", default=[0, 7, 15, 32], metavar="I",
                   help="Whisper hidden states the connector reads (MuFun's: 0 7 15 32)")
    m.add_argument("--pool-stride", type=int, default=5, help="average pooling of encoder positions (MuFun's: 5)")
    m.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="weights' dtype (auto: bf16 on cuda, fp32 elsewhere)")
    _add_sampling(m)
    m.set_defaults(func=infer.cmd_mufun)


def _add_eval(sub) -> None:
    e = sub.add_parser("eval", help="evaluate a trained stage on held-out data and print one table")
    e.add_argument("stage", choices=list(STAGES) + ["all"], help="a stage, or all stages with a checkpoint")
    e.add_argument("--ckpt", default=None, help="the stage's export folder (default CHECKPOINTS/<stage>/export)")
    e.add_argument("--checkpoints", default="checkpoints", help="root of the stages' folders (default checkpoints)")
    e.add_argument("--data", default="data/small", help="synthetic-world folder (default data/small)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--decode", default=None, choices=["greedy", "beam", "both"],
                   help="audio: CTC decoder(s) to score, side by side (default both: greedy and prefix beam "
                        "search with a character 6-gram of the world's training text)")
    e.add_argument("--max-items", type=int, default=None, metavar="N",
                   help=f"{', '.join(eval_cmd.MAX_ITEMS_STAGES)}: only the split's first N TTS sentences")
    e.add_argument("--asr", default=None, metavar="DIR",
                   help=f"{', '.join(eval_cmd.EXPORT_OPTIONS['asr'])}: the ASR export that judges by CER "
                        "(default: the talker's and vocoder's sibling audio/export; the codec's ceiling CER needs it)")
    e.add_argument("--vocoder", default=None, metavar="DIR",
                   help=f"{', '.join(eval_cmd.EXPORT_OPTIONS['vocoder'])}: the learned vocoder's export "
                        "(default: the talker's sibling vocoder/export; for the codec, only Griffin-Lim without it)")
    e.add_argument("--codec", default=None, metavar="DIR",
                   help="talker: the codec export it was trained on (default: its sibling codec/export)")
    e.set_defaults(func=eval_cmd.cmd_eval)


def _cmd_docs_build(args) -> int:
    layers = Path(args.out).parent / "layers.png"              # docs/layers.png beside docs/pipelines/
    for path in build_docs(args.out, None if args.no_guide else args.step_through, layers=layers):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omni", description=__doc__.splitlines()[0])
    p.add_argument("--quiet", action="store_true", help="no progress bars (messages still print)")
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

    d = sub.add_parser("data", help="build the synthetic world; import real data; check manifests")
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
    add_import_parser(ds)

    tn = sub.add_parser("train", help="train one stage (train/<stage>.py); options after the stage go to it")
    tn.add_argument("stage", choices=sorted(STAGES))
    tn.add_argument("args", nargs=argparse.REMAINDER, help="e.g. --preset smoke, or --config FILE.json")
    tn.set_defaults(func=_cmd_train)

    _add_inference(sub)
    _add_eval(sub)
    dm = sub.add_parser("demo", help="the main job: world → train every stage → evaluate → every pipeline → "
                                     "runs/demo/report.md")
    add_demo_arguments(dm)
    dm.set_defaults(func=demo.run)

    dc = sub.add_parser("docs", help="generate the documentation from the code")
    dcs = dc.add_subparsers(dest="action", required=True)
    db = dcs.add_parser("build", help="write docs/pipelines/*.md, docs/step-through.md and docs/layers.png "
                                          "from the traces and omni/layers.py")
    db.add_argument("--out", default=str(DOCS_DIR / "pipelines"), help="folder of the pipeline pages (they link "
                    "to the code as ../../omni/..., so keep them two folders below the repository root; default: "
                    "the repository's docs/pipelines, from any directory)")
    db.add_argument("--step-through", default=str(DOCS_DIR / "step-through.md"),
                    help="path of the step-through guide (default: the repository's docs/step-through.md)")
    db.add_argument("--no-guide", action="store_true", help="write only the pipeline pages")
    db.set_defaults(func=_cmd_docs_build)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. Errors the user can fix (bad input, missing files) are
    printed as one line and exit with status 1; OMNI_DEBUG=1 shows the traceback."""
    args = build_parser().parse_args(argv)
    if args.quiet:
        from omni.progress import set_quiet

        set_quiet()
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        if os.environ.get("OMNI_DEBUG"):
            raise
        print(f"omni {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
