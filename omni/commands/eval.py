"""``omni eval <stage>`` and ``omni eval all``: held-out evaluation, printed as one table.

    omni eval audio [--ckpt checkpoints/audio/export] [--data data/small] [--split test] [--device auto] [--json]
                    [--decode greedy|beam|both]
    omni eval all [--checkpoints checkpoints] [--data data/small] ...

A stage's evaluation is ``evaluate(ckpt, data, split, device) -> list[Metric]``, the function its entry in
:data:`omni.stages.STAGES` names (``omni/evaluation/<stage>.py``). Before it is called, the checkpoint folder
is checked (:func:`omni.exports.check_folder`), so a missing one
is reported the same way for every stage. ``all`` evaluates every stage whose
export is complete and names each one it skips, with the files it lacks.
Whatever an evaluation prints while it runs goes to stderr: stdout holds only
the table (or the JSON).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from omni.evaluation import Metric, format_table, metrics_to_json
from omni.stages import STAGES, stage
from omni.exports import check_folder, missing_files
from omni.device import resolve_device
from omni.checkpoint import export_dir

DEFAULT_DATA = "data/small"
MAX_ITEMS_STAGES = ("talker", "vocoder")     # evaluations that take max_items (--max-items)
# evaluations that take another stage's export as a judge or a part: option → the stages that take it
EXPORT_OPTIONS = {"asr": ("codec", "talker", "vocoder"), "vocoder": ("codec", "talker"), "codec": ("talker",)}


def evaluate_stage(name: str, ckpt: str | Path, data: str | Path, split: str, device: str,
                   **options) -> list[Metric]:
    """``options`` go to the stage's ``evaluate`` as keywords (e.g. ``decode`` for audio)."""
    entry = stage(name)                             # an unknown stage is reported before anything is read
    evaluate = entry.evaluate
    ckpt = check_folder(name, ckpt, export=entry.export)
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"evaluation data {data} not found: build it with "
                                f"`omni data synth --out {data} --size small`, or pass --data DIR")
    with contextlib.redirect_stdout(sys.stderr):    # progress lines of the evaluation; stdout keeps the table
        metrics = evaluate(ckpt, data, split=split, device=device, **options)
    bad = [m for m in metrics if not isinstance(m, Metric)]
    if bad:
        raise TypeError(f"{evaluate.__module__}.evaluate returned {type(bad[0]).__name__}, not Metric")
    return metrics


def stage_options(stage: str, args) -> dict:
    """Options of one stage's evaluation from the command line: ``--decode`` for audio only,
    ``--max-items`` for the stages in MAX_ITEMS_STAGES, ``--asr`` / ``--vocoder`` / ``--codec`` for those in EXPORT_OPTIONS."""
    options = {}
    decode = getattr(args, "decode", None)
    if decode is not None:
        if stage == "audio":
            options["decode"] = decode
        elif args.stage != "all":
            raise ValueError(f"--decode chooses the audio stage's CTC decoder; the {stage} stage has none")
    max_items = getattr(args, "max_items", None)
    if max_items is not None:
        if stage in MAX_ITEMS_STAGES:
            options["max_items"] = max_items
        elif args.stage != "all":
            raise ValueError(f"--max-items limits the sentences of {', '.join(MAX_ITEMS_STAGES)}; "
                             f"the {stage} stage's evaluation takes no such limit")
    for name, stages in EXPORT_OPTIONS.items():
        folder = getattr(args, name, None)
        if folder is None:
            continue
        if stage in stages:
            options[name] = folder
        elif args.stage != "all":
            raise ValueError(f"--{name} is an export for the evaluations of {', '.join(stages)}; "
                             f"the {stage} stage's evaluation takes none")
    return options


def cmd_eval(args) -> int:
    device = str(resolve_device(args.device))
    if args.stage != "all":
        ckpt = args.ckpt or export_dir(args.stage, args.checkpoints)
        metrics = evaluate_stage(args.stage, ckpt, args.data, args.split, device, **stage_options(args.stage, args))
        print(metrics_to_json(metrics) if args.json else
              f"# omni eval {args.stage} ({ckpt}, {args.data}, split {args.split})\n\n{format_table(metrics)}")
        return 0

    if args.ckpt is not None:
        raise ValueError("`omni eval all` reads each stage from --checkpoints ROOT/<stage>/export; "
                         "--ckpt names one stage's folder")
    results: dict[str, list[Metric]] = {}
    skipped: dict[str, str] = {}
    for stage in STAGES:
        folder = export_dir(stage, args.checkpoints)
        missing = missing_files(stage, folder, STAGES[stage].export)
        if missing:
            skipped[stage] = (f"{folder} does not exist" if not folder.exists()
                              else f"{folder} lacks {', '.join(missing)}")
            continue
        print(f"[eval] {stage} ({folder})", file=sys.stderr, flush=True)
        results[stage] = evaluate_stage(stage, folder, args.data, args.split, device, **stage_options(stage, args))
    if not results:
        raise FileNotFoundError(f"no stage has a checkpoint under {args.checkpoints}/<stage>/export "
                                f"(skipped: {', '.join(skipped)}); run `make demo` or `omni train <stage>`")
    notes = [f"skipped {stage}: no checkpoint ({why}); run `omni train {stage}` or `make demo`"
             for stage, why in skipped.items()]
    if args.json:                                   # stdout stays pure JSON; the skips go to stderr
        print(metrics_to_json(results))
        for note in notes:
            print(f"[eval] {note}", file=sys.stderr)
    else:
        print(f"# omni eval all ({args.checkpoints}, {args.data}, split {args.split})\n")
        print(format_table(results))
        if notes:
            print("\n" + "\n".join(notes))
    return 0
