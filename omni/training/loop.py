"""The one training loop every stage shares.

A stage supplies five things and gets a guarded, resumable, checkpointed run::

    ctx = setup(cfg)                                  # seed, join torchrun's group, pick the device
    model = ThinkerLM(model_cfg)                      # built after seeding: the same init on every rank
    data = ShuffledBatches(windows, cfg.batch_size, cfg.seed, rank=ctx.dist.rank, world_size=ctx.dist.world_size)
    result = fit(ctx, model, loss_fn, data, run_dir="runs/thinker", model_config=model_cfg, eval_fn=evaluate)

* ``loss_fn(model, batch) -> (loss, metrics)``: a scalar loss (mean over the
  micro-batch) and a dict of floats to log. Two keys are counts, summed over
  micro-steps and ranks and shown as throughput: ``tokens`` and ``samples``.
* ``data``: a :class:`~omni.training.data.DataSource` (``next_batch``,
  ``state_dict``, ``load_state_dict``).
* ``train_module`` (optional): what ``loss_fn`` is called with instead of the model, DDP-wrapped in a
  multi-process run: a module around ``model`` whose ``forward`` returns the loss, for a loss that must run
  inside DDP's forward (the Thinker's fused cross-entropy, :class:`omni.training.lm.NextTokenLoss`). It holds
  no weights of its own; the optimizer, checkpoints, ``eval_fn`` and the export use ``model``.
* ``eval_fn(model) -> dict`` (optional), run on rank 0 every ``eval_freq``
  steps and at the end; ``TrainConfig.best_metric`` names the key that picks
  ``best.pt``; a ``val_loss`` key is drawn next to the training loss.

At the end ``<run>/export`` gets best.pt's weights (``TrainConfig.export = "best"``, the default,
when there is a best.pt) or the last step's (``"last"``); the last line says which, and the
export's config.json records it (:func:`export_weights`).

One optimizer step = ``grad_accum_steps`` micro-steps, then the guards in the
order of seed 004 (see :mod:`omni.training.guards`), then clip and step.

:func:`fit` reads as its phases, one function each, in the order they run; a :class:`Loop` carries the
run's parts and counters between them::

    build               model on the device, precision, optimizer, schedule, skip tracker, metrics log
    resume              from <run>/checkpoints/latest.pt, if there is one
    wrap_and_announce   DDP-wrap the model (multi-process runs); say what will run
    per step:
      micro_steps       forward under autocast, guard 1 (the loss), scaled backward, metrics summed
      step_or_skip      guards 2-3 (unscale, gradient check, agreed across ranks); clip and step, or skip
      log_step          metrics.jsonl, the progress bar, a skip message (and the consecutive-skip stop)
      evaluate_and_save eval_fn on rank 0, best.pt, latest.pt
    export_weights      <run>/export from best.pt or the last step
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from omni.nn.compiled import compile_announcement, compile_blocks
from omni.progress import progress_bar, write
from omni import checkpoint as ckpt_io
from omni.training.config import TrainConfig, config_dict, config_diff
from omni.training.data import DataSource, to_device
from omni.training.distributed import (DistInfo, any_rank, init_distributed, mean_over_ranks, shutdown,
                                       sync_context, wrap_model)
from omni.training.guards import Skip, SkipTracker, check_gradients, grad_norm, validate_loss, zero_surrogate
from omni.training.metrics import MetricsLog, plot_losses
from omni.training.optim import build_optimizer, build_scheduler
from omni.device import resolve_device
from omni.training.precision import Precision

COUNT_KEYS = ("tokens", "samples")   # loss_fn metrics that are counts (summed), not averages


@dataclass
class TrainContext:
    cfg: TrainConfig
    device: torch.device
    dist: DistInfo

    def say(self, msg: str) -> None:
        """Print once (rank 0), without breaking the progress bar."""
        if self.dist.is_main:
            write(msg)

    def close(self) -> None:
        shutdown(self.dist)


@dataclass
class TrainResult:
    step: int                 # optimizer-step attempts done (== cfg.max_steps when finished)
    updates: int              # steps actually applied (attempts minus skipped)
    skipped: int
    best: dict | None         # {"metric", "score", "step"} of best.pt, if a best_metric was set
    last_eval: dict | None
    run_dir: Path


def setup(cfg: TrainConfig) -> TrainContext:
    """Seed every RNG, join the process group torchrun describes (if any) and pick the device."""
    wanted = resolve_device(cfg.device)                  # validates the name before anything starts
    info = init_distributed(wanted.type)
    device = resolve_device(cfg.device, local_rank=info.local_rank) if info.enabled else wanted
    ckpt_io.seed_everything(cfg.seed)
    if cfg.compile and info.is_main:
        write(compile_announcement("train.compile"))      # the run's first line
    return TrainContext(cfg=cfg, device=device, dist=info)


@dataclass
class Loop:
    """What one :func:`fit` carries from step to step: the run's parts and its counters."""
    ctx: TrainContext
    model: nn.Module                 # the bare model (checkpoints, export, evaluation)
    data: DataSource
    run_dir: Path
    model_config: object
    precision: Precision
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    skips: SkipTracker
    log: MetricsLog
    ddp_model: nn.Module | None = None   # what the loss sees: the model (or train_module), DDP-wrapped if multi-process
    params: list = dataclasses.field(default_factory=list)   # the trainable parameters
    step: int = 0                    # optimizer-step attempts so far
    updates: int = 0                 # steps applied
    best: dict | None = None         # {"metric", "score", "step"} of best.pt
    last_eval: dict | None = None

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"


@dataclass
class MicroSteps:
    """One optimizer step's micro-steps, summed: their losses, averaged metrics, counts, and a bad loss if any."""
    losses: list[float]
    sums: dict[str, float]
    counts: dict[str, int]
    bad_loss: str | None


@dataclass
class Update:
    """What guards 2-4 decided for one step."""
    lr: float
    norm: torch.Tensor
    scale_before: float | None       # the fp16 loss scale before this step (None without a scaler)
    skipped: bool
    reason: str | None


def fit(ctx: TrainContext, model: nn.Module, loss_fn: Callable, data: DataSource, *, run_dir,
        model_config, eval_fn: Callable[[nn.Module], dict] | None = None,
        train_module: nn.Module | None = None) -> TrainResult:
    """Train ``model`` for ``ctx.cfg.max_steps`` optimizer steps, resuming from ``<run_dir>/checkpoints/latest.pt``;
    export at the end. Each phase below is one function."""
    cfg = ctx.cfg
    if cfg.best_metric is not None and eval_fn is None:
        raise ValueError(f"TrainConfig.best_metric={cfg.best_metric!r} but the stage passed no eval_fn")
    loop = build(ctx, model, data, Path(run_dir), model_config)      # device, precision, optimizer, schedule
    resume(loop)                                                     # from latest.pt, if there is one
    wrap_and_announce(loop, model if train_module is None else train_module)   # DDP wrap; say what will run

    bar = progress_bar(total=cfg.max_steps, initial=loop.step, enabled=ctx.dist.is_main and cfg.progress,
                       desc=loop.run_dir.name)
    while loop.step < cfg.max_steps:
        loop.step += 1
        t0 = time.perf_counter()
        micro = micro_steps(loop, loss_fn)                           # forward, guard 1, scaled backward
        update = step_or_skip(loop, micro)                           # guards 2-4, then the optimizer step
        log_step(loop, micro, update, time.perf_counter() - t0, bar)
        evaluate_and_save(loop, eval_fn, last_step=loop.step == cfg.max_steps)
    bar.close()

    if ctx.dist.is_main:
        ctx.say(f"[done] {loop.step} steps, {loop.updates} applied, {loop.skips.total} skipped")
        export_weights(ctx, model, model_config, loop.best, loop.step, loop.ckpt_dir, loop.run_dir / "export")
    return TrainResult(step=loop.step, updates=loop.updates, skipped=loop.skips.total, best=loop.best,
                       last_eval=loop.last_eval, run_dir=loop.run_dir)


# ------------------------------------------------------------------
# Build: model on the device, precision, optimizer, schedule, guards
# ------------------------------------------------------------------
def build(ctx: TrainContext, model: nn.Module, data: DataSource, run_dir: Path, model_config) -> Loop:
    cfg = ctx.cfg
    if ctx.dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    model.to(ctx.device)
    if cfg.compile:
        compile_blocks(model)                               # in place: names, checkpoints unchanged
    precision = Precision.create(cfg.precision, ctx.device, cfg.fp16_init_scale)
    optimizer = build_optimizer(model, cfg)
    return Loop(ctx=ctx, model=model, data=data, run_dir=run_dir, model_config=model_config,
                precision=precision, optimizer=optimizer, scheduler=build_scheduler(optimizer, cfg),
                skips=SkipTracker(cfg.max_consecutive_skips),
                log=MetricsLog(run_dir / "metrics.jsonl", enabled=ctx.dist.is_main))


# ------------------------------------------------------------------
# Resume from <run>/checkpoints/latest.pt if there is one
# ------------------------------------------------------------------
def resume(loop: Loop) -> None:
    ctx, latest = loop.ctx, loop.ckpt_dir / "latest.pt"
    if latest.exists():
        state = ckpt_io.read_checkpoint(latest)
        ckpt_io.restore_training_state(state, latest, model=loop.model, optimizer=loop.optimizer,
                                       scheduler=loop.scheduler, scaler=loop.precision.scaler, data=loop.data,
                                       skips=loop.skips, model_config=loop.model_config)
        loop.step, loop.updates, loop.best = state["step"], state["updates"], state["best"]
        changed = config_diff(state["train_config"], config_dict(ctx.cfg))
        ctx.say(f"[resume] {latest}: step {loop.step}, {loop.updates} updates, data epoch {state['data']['epoch']} "
                f"batch {state['data']['index']}" + (f"; train config changed: {changed}" if changed else ""))
        loop.log.truncate_after(loop.step)
    elif loop.log.path.exists() and ctx.dist.is_main:
        loop.log.path.unlink()                              # a fresh run starts a fresh log


def wrap_and_announce(loop: Loop, train_module: nn.Module) -> None:
    """Wrap what the loss calls (the model, or a module around it) for DDP (a multi-process run); say what will run."""
    ctx, cfg = loop.ctx, loop.ctx.cfg
    own = {id(p) for p in loop.model.parameters()}
    extra = [n for n, p in train_module.named_parameters() if id(p) not in own]
    if extra:
        raise ValueError(f"train_module has parameters the model lacks (they would be trained but never saved "
                         f"or exported): {extra[:5]}")
    loop.ddp_model = wrap_model(train_module, ctx.dist, ctx.device)
    loop.params = [p for p in loop.model.parameters() if p.requires_grad]
    N, world = cfg.grad_accum_steps, ctx.dist.world_size
    ctx.say(f"[train] {loop.precision.describe()} · {world} process(es) · effective batch "
            f"{cfg.batch_size} × {N} micro-steps × {world} = {cfg.batch_size * N * world} · "
            f"{sum(p.numel() for p in loop.params):,} trainable parameters · run dir {loop.run_dir}")


# ------------------------------------------------------------------
# Micro-steps: forward under autocast, guard 1, scaled backward
# ------------------------------------------------------------------
def micro_steps(loop: Loop, loss_fn: Callable) -> MicroSteps:
    ctx, cfg, precision = loop.ctx, loop.ctx.cfg, loop.precision
    N = cfg.grad_accum_steps
    loop.ddp_model.train()
    loop.optimizer.zero_grad(set_to_none=True)
    out = MicroSteps(losses=[], sums={}, counts=dict.fromkeys(COUNT_KEYS, 0), bad_loss=None)
    for micro in range(N):
        batch = to_device(loop.data.next_batch(), ctx.device)
        with sync_context(loop.ddp_model, final_micro_step=(micro == N - 1)):
            with precision.autocast():
                loss, metrics = loss_fn(loop.ddp_model, batch)
            reason = validate_loss(loss, cfg.loss_min, cfg.loss_max)           # guard 1: the loss
            if reason is None:
                precision.scaler.scale(loss / N).backward()                   # loss / N: accumulation
                out.losses.append(float(loss.detach()))
            else:
                out.bad_loss = out.bad_loss or f"micro-step {micro}: {reason}"
                precision.scaler.scale(zero_surrogate(loop.params)).backward()  # keeps ranks in step
        for k, v in metrics.items():
            if k in COUNT_KEYS:
                out.counts[k] += int(v)
            else:
                out.sums[k] = out.sums.get(k, 0.0) + float(v) / N
    return out


# ------------------------------------------------------------------
# Guards 2-3: unscale, then check the gradients; skip or step
# ------------------------------------------------------------------
def step_or_skip(loop: Loop, micro: MicroSteps) -> Update:
    ctx, cfg, scaler, optimizer = loop.ctx, loop.ctx.cfg, loop.precision.scaler, loop.optimizer
    lr = optimizer.param_groups[0]["lr"]
    scale_before = scaler.get_scale() if loop.precision.uses_scaler else None
    scaler.unscale_(optimizer)                                                # guard 2: BEFORE checks
    norm = grad_norm(loop.params)
    reason = micro.bad_loss or check_gradients(norm, cfg.explode_grad_norm)   # guard 3: explosion
    skipped = any_rank(reason is not None, ctx.dist, ctx.device)
    if skipped:
        reason = reason or "another rank skipped this step"
        optimizer.zero_grad(set_to_none=True)
        scaler.update()                        # unscale_ recorded the inf checks: update is safe, needed
    else:
        torch.nn.utils.clip_grads_with_norm_(loop.params, cfg.max_grad_norm, norm)  # guard 4: clip
        scaler.step(optimizer)                                                # 5: step
        scaler.update()
        loop.scheduler.step()
        loop.updates += 1
    return Update(lr=lr, norm=norm, scale_before=scale_before, skipped=skipped, reason=reason)


# ------------------------------------------------------------------
# Log: metrics.jsonl, progress bar, skip message
# ------------------------------------------------------------------
def log_step(loop: Loop, micro: MicroSteps, update: Update, dt: float, bar) -> None:
    ctx, step, world = loop.ctx, loop.step, loop.ctx.dist.world_size
    mean_loss = sum(micro.losses) / len(micro.losses) if micro.losses else math.nan
    mean_loss = mean_over_ranks(mean_loss, ctx.dist, ctx.device)
    norm = float(update.norm)
    record = {"kind": "train", "step": step, "loss": mean_loss if math.isfinite(mean_loss) else None,
              "lr": update.lr, "grad_norm": norm if math.isfinite(norm) else None,
              "skipped": update.reason if update.skipped else None, "time_s": dt, **micro.sums}
    for k in COUNT_KEYS:
        if micro.counts[k]:
            record[f"{k}_per_s"] = micro.counts[k] * world / dt
    if update.scale_before is not None:
        record["loss_scale"] = update.scale_before
    loop.log.append(record)
    bar.update(1)
    rate = next((f"{record[f'{k}_per_s']:.0f} {k}/s" for k in COUNT_KEYS if f"{k}_per_s" in record), "")
    bar.set_postfix_str(f"loss {mean_loss:.4f} · lr {update.lr:.2e} · {rate}")
    if update.skipped:
        scale = (f" (loss scale {update.scale_before:g} → {loop.precision.scaler.get_scale():g})"
                 if update.scale_before is not None else "")
        ctx.say(f"[guard] step {step} skipped: {update.reason}{scale}")
        loop.skips.skipped(Skip(step=step, reason=update.reason, lr=update.lr,
                                loss_scale=update.scale_before))                  # may raise
    else:
        loop.skips.ok()


# ------------------------------------------------------------------
# Evaluate (rank 0), keep the best, checkpoint
# ------------------------------------------------------------------
def evaluate_and_save(loop: Loop, eval_fn: Callable[[nn.Module], dict] | None, last_step: bool) -> None:
    ctx, cfg, step, main = loop.ctx, loop.ctx.cfg, loop.step, loop.ctx.dist.is_main
    if eval_fn is not None and main and (step % cfg.eval_freq == 0 or last_step):
        loop.last_eval = evaluate(eval_fn, loop.model, loop.precision)
        loop.log.append({"kind": "eval", "step": step, **loop.last_eval})
        ctx.say(f"[eval] step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in loop.last_eval.items()))
        if cfg.best_metric is not None:
            if cfg.best_metric not in loop.last_eval:
                raise KeyError(f"TrainConfig.best_metric={cfg.best_metric!r} is not among eval_fn's "
                               f"results {sorted(loop.last_eval)}")
            score, best = loop.last_eval[cfg.best_metric], loop.best
            if best is None or (score < best["score"] if cfg.best_mode == "min" else score > best["score"]):
                loop.best = {"metric": cfg.best_metric, "score": score, "step": step}
                save(loop, "best.pt")
                ctx.say(f"[checkpoint] new best {cfg.best_metric} {score:.4g} → {loop.ckpt_dir / 'best.pt'}")
    if main and (step % cfg.checkpoint_freq == 0 or last_step):
        save(loop, "latest.pt")


def save(loop: Loop, name: str) -> None:
    """``<run>/checkpoints/<name>``: everything a resume needs (atomic); and the loss curve."""
    ckpt_io.atomic_save(ckpt_io.training_state(
        step=loop.step, updates=loop.updates, model=loop.model, optimizer=loop.optimizer, scheduler=loop.scheduler,
        scaler=loop.precision.scaler, data=loop.data, skips=loop.skips, best=loop.best,
        model_config=loop.model_config, train_config=loop.ctx.cfg), loop.ckpt_dir / name)
    plot_losses(loop.log.read(), loop.run_dir / "loss.png", title=f"{loop.run_dir.name}: loss (step {loop.step})")


def export_weights(ctx: TrainContext, model: nn.Module, model_config, best: dict | None, step: int,
                   ckpt_dir: Path, out_dir: Path) -> Path:
    """Write ``out_dir`` from best.pt (``train.export: best`` and a best exists) or the last step's
    weights; say which, and record it in config.json under ``_export``."""
    if ctx.cfg.export == "best" and best is not None:
        provenance = {"weights": "best", "checkpoint": "best.pt", **best}
        out = ckpt_io.export_checkpoint(model, ckpt_dir / "best.pt", model_config, out_dir, provenance)
        what = f"best.pt ({best['metric']} {best['score']:.4g} at step {best['step']})"
    else:
        provenance = {"weights": "last", "step": step}
        out = ckpt_io.export_safetensors(model, model_config, out_dir, provenance)
        why = "train.export is 'last'" if ctx.cfg.export == "last" else "no best.pt: train.best_metric is not set"
        what = f"the last step's weights (step {step}; {why})"
    ctx.say(f"[export] {what} → {out}")
    return out


@torch.no_grad()
def evaluate(eval_fn: Callable[[nn.Module], dict], model: nn.Module, precision: Precision) -> dict:
    """Run the stage's eval_fn in eval mode under the run's autocast; values become floats."""
    model.eval()
    with precision.autocast():
        result = eval_fn(model)
    model.train()
    return {k: float(v) for k, v in result.items()}


def override(cfg: TrainConfig, **changes) -> TrainConfig:
    """A copy of ``cfg`` with the non-None ``changes`` applied (command-line overrides)."""
    return dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})
