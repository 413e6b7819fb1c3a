"""What every stage shares beyond the loop: the one skeleton a stage's ``main`` runs, where the world and
the tokenizer come from, and where a stage's exported weights live.

The skeleton (omni/stages/<stage>.py fills in the middle)::

    run = start("thinker", args, ThinkerConfig, ThinkerDataConfig)  # preset + command line; seeds, device
    model_cfg, data_cfg, cfg, ctx, run_dir = run
    ...                                                              # the stage's data, tokenizer, model, loss
    return train_and_export(run, model, loss_fn, data, evaluate, ship=[...], report=...)

Conventions (docs/training.md):

* ``--data DIR`` is a synthetic-world folder (``omni data synth --out DIR``) or a
  folder of real data in the same layout (``omni data import FORMAT SRC --out DIR``);
  presets name ``data/<size>``. A folder without the stage's task stops it with
  what the folder holds and which stages it feeds (:func:`world_file`).
* A run directory ``--out RUN`` ends with ``RUN/export/`` (config.json,
  model.safetensors, and tokenizer.model for stages that read text).
  ``make demo`` trains into ``checkpoints/<stage>/``, so inference looks in
  ``checkpoints/<stage>/export/`` by default.
* The whole omni stack shares one BPE tokenizer: the Thinker's. A stage that
  reads text takes ``--tokenizer PATH``; without it, it reuses the one already
  in its run directory (resume), else trains one on the world's
  ``tokenizer_corpus.txt`` and says so.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any, Callable, NamedTuple

from omni.checkpoint import export_dir
from omni.data.folder import missing_task_message
from omni.data.quality import DEFAULT_THRESHOLD, load_checked
from omni.progress import set_quiet
from omni.tokenizer import DEFAULT_VOCAB_SIZE, BPETokenizer
from omni.training.config import TrainConfig, load_preset, preset_path
from omni.training.data import DataSource
from omni.training.distributed import barrier
from omni.training.loop import TrainContext, TrainResult, fit, override, setup


class StageRun(NamedTuple):
    """One run of a stage, as :func:`start` sets it up; unpacks as ``model_cfg, data_cfg, cfg, ctx, run_dir``."""
    model_cfg: Any          # the preset's model section (the stage's model config class)
    data_cfg: Any           # the preset's data section
    cfg: TrainConfig        # the preset's train section, the command line applied
    ctx: TrainContext       # seeded, in torchrun's group if any, on its device
    run_dir: Path           # --out, else runs/<name>-<preset>


def start(name: str, args: argparse.Namespace, model: type, data: type, *, sections: dict[str, type] | None = None,
          train: Callable[[dict], TrainConfig] | None = None) -> StageRun:
    """Read ``args.config`` (sections model, data, train, and ``sections``), apply the command line to the
    train section, pick the run directory (``--out``, else ``runs/<name>-<preset>``) and :func:`setup`.

    ``train(preset)`` chooses the train section the command line applies to (MuFun's phases change a few keys).
    """
    preset = load_preset(args.config, {"model": model, "data": data, "train": TrainConfig, **(sections or {})})
    cfg = command_line_overrides(train(preset) if train is not None else preset["train"], args)
    run_dir = default_run_dir(args, name)
    ctx = setup(cfg)                                   # seeds, joins torchrun's group, picks the device
    return StageRun(preset["model"], preset["data"], cfg, ctx, run_dir)


def train_and_export(run: StageRun, model, loss_fn: Callable, data: DataSource, evaluate: Callable[..., dict], *,
                     ship: list[Path] = (), report: Callable[[TrainResult], str] | None = None,
                     train_module=None) -> int:
    """Train (:func:`~omni.training.loop.fit`: guards, checkpoints, resume, metrics, ``export/``), copy the files
    in ``ship`` next to the exported weights, say ``report(result)`` after a validation; close; exit status 0.
    ``train_module``: what ``loss_fn`` calls instead of ``model`` (fit's docstring), e.g. NextTokenLoss(model)."""
    model_cfg, _, _, ctx, run_dir = run
    result = fit(ctx, model, loss_fn, data, run_dir=run_dir, model_config=model_cfg, eval_fn=evaluate,
                 train_module=train_module)
    if ctx.dist.is_main:
        for path in ship:
            shutil.copyfile(path, run_dir / "export" / Path(path).name)
        if report is not None and result.last_eval is not None:
            ctx.say(report(result))
    ctx.close()
    return 0


def shared_tokenizer(run: StageRun, world: str | Path | None, given: str | Path | None,
                     vocab_size: int) -> BPETokenizer:
    """:func:`resolve_tokenizer` on rank 0 while the other ranks wait; then every rank reads the run's copy."""
    if run.ctx.dist.is_main:
        resolve_tokenizer(run.run_dir, world, given, vocab_size=vocab_size, say=run.ctx.say)
    barrier(run.ctx.dist)                              # other ranks wait for rank 0's tokenizer
    return BPETokenizer(run.run_dir / "tokenizer.model")


def checked_records(world: str | Path, name: str, task: str, say, threshold: float = DEFAULT_THRESHOLD,
                    prefix: str = "") -> list:
    """The records of ``world/name`` with bad ones dropped and counted by reason (``omni.data.quality``); the count
    is said (after ``prefix``), and more than ``threshold`` bad stops the run."""
    records, report = load_checked(world_file(world, name), task, threshold=threshold)
    say(prefix + report.summary())
    return records


def stage_parser(stage: str, doc: str, data_help: str = "synthetic-world folder (overrides data.world)"
                 ) -> argparse.ArgumentParser:
    """The options every ``train/<stage>.py`` takes; the script adds its own after these."""
    p = argparse.ArgumentParser(prog=f"train/{stage}.py", description=doc.splitlines()[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help=f"preset JSON file, relative to the current directory, "
                                        f"e.g. train/configs/{stage}/smoke.json")
    which.add_argument("--preset", dest="config", type=lambda name: _preset_file(stage, name),
                       help=f"a project preset by name, found from any directory: smoke | cpu | gpu | demo "
                            f"(the files in train/configs/{stage}/)")
    p.add_argument("--data", default=None, help=data_help)
    p.add_argument("--out", default=None, help=f"run directory (default runs/{stage}-<preset>)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (overrides train.device)")
    p.add_argument("--precision", default=None, help="auto | bf16 | fp16 | fp32 (overrides train.precision)")
    p.add_argument("--max-steps", type=int, default=None, help="overrides train.max_steps")
    p.add_argument("--quiet", action="store_true", help="no progress bars (sets train.progress false)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model's blocks (sets train.compile true)")
    return p


def _preset_file(stage: str, name: str) -> str:
    """``--preset NAME`` → the project's preset file (argparse reports a missing one as a usage error)."""
    try:
        return str(preset_path(stage, name))
    except FileNotFoundError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def command_line_overrides(train_cfg, args: argparse.Namespace):
    """The preset's TrainConfig with --device, --precision, --max-steps, --quiet and --compile applied."""
    if args.quiet:
        set_quiet()
    return override(train_cfg, device=args.device, precision=args.precision, max_steps=args.max_steps,
                    progress=False if args.quiet else None, compile=True if args.compile else None)


def default_run_dir(args: argparse.Namespace, name: str) -> Path:
    """``--out``, else ``runs/<name>-<preset file stem>``."""
    return Path(args.out or f"runs/{name}-{Path(args.config).stem}")


def sibling_export(ckpt: str | Path, stage: str) -> Path:
    """Another stage's export next to ``ckpt``: ``ROOT/talker/export`` → ``ROOT/codec/export``.

    For a folder outside that layout, the default ``checkpoints/<stage>/export``.
    """
    ckpt = Path(ckpt)
    if ckpt.name == "export" and ckpt.parent.parent != ckpt.parent:
        return ckpt.parent.parent / stage / "export"
    return export_dir(stage)


def world_file(world: str | Path, name: str) -> Path:
    """``world/name``, or a FileNotFoundError that says how to make the world or, for a folder
    that lacks this task, what the folder holds and which stages it feeds (``omni.data.folder``)."""
    world = Path(world)
    path = world / name
    if not path.is_file():
        if not world.exists():
            raise FileNotFoundError(f"{path} not found; build it with `omni data synth --out {world} --size small` "
                                    f"or `omni data import FORMAT SRC --out {world}`")
        raise FileNotFoundError(f"{path} not found; {missing_task_message(world, name)}")
    return path


def resolve_tokenizer(run_dir: str | Path, world: str | Path | None = None, given: str | Path | None = None,
                      vocab_size: int = DEFAULT_VOCAB_SIZE, say=print) -> BPETokenizer:
    """The stage's tokenizer, copied into ``run_dir/tokenizer.model``.

    Order: ``given`` (copied), else the one already in ``run_dir`` (a resumed
    run), else trained on ``world/tokenizer_corpus.txt``.
    """
    run_dir = Path(run_dir)
    target = run_dir / "tokenizer.model"
    run_dir.mkdir(parents=True, exist_ok=True)
    if given is not None:
        given = Path(given)
        if not given.is_file():
            raise FileNotFoundError(f"tokenizer not found: {given}")
        if not target.exists() or target.read_bytes() != given.read_bytes():
            shutil.copyfile(given, target)
        say(f"[tokenizer] {given}")
    elif target.exists():
        say(f"[tokenizer] reusing {target}")
    else:
        if world is None:
            raise FileNotFoundError("no tokenizer: pass --tokenizer PATH, or a world folder to train one on")
        corpus = world_file(world, "tokenizer_corpus.txt")
        BPETokenizer.train(corpus, target, vocab_size=vocab_size)
        say(f"[tokenizer] trained on {corpus} → {target}")
    tok = BPETokenizer(target)
    if tok.vocab_size > vocab_size:
        raise ValueError(f"{target} has {tok.vocab_size} pieces, more than the model's vocabulary of {vocab_size}")
    return tok
