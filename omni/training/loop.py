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
* ``eval_fn(model) -> dict`` (optional), run on rank 0 every ``eval_freq``
  steps and at the end; ``TrainConfig.best_metric`` names the key that picks
  ``best.pt``; a ``val_loss`` key is drawn next to the training loss.

At the end ``<run>/export`` gets best.pt's weights (``TrainConfig.export = "best"``, the default,
when there is a best.pt) or the last step's (``"last"``); the last line says which, and the
export's config.json records it (:func:`export_weights`).

One optimizer step = ``grad_accum_steps`` micro-steps, then the guards in the
order of seed 004 (see :mod:`omni.training.guards`), then clip and step.
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
                                       sync_context, unwrap, wrap_model)
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


def fit(ctx: TrainContext, model: nn.Module, loss_fn: Callable, data: DataSource, *, run_dir,
        model_config, eval_fn: Callable[[nn.Module], dict] | None = None) -> TrainResult:
    cfg, main = ctx.cfg, ctx.dist.is_main
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.best_metric is not None and eval_fn is None:
        raise ValueError(f"TrainConfig.best_metric={cfg.best_metric!r} but the stage passed no eval_fn")

    # ------------------------------------------------------------------
    # Build: model on the device, precision, optimizer, schedule, guards
    # ------------------------------------------------------------------
    model.to(ctx.device)
    if cfg.compile:
        compile_blocks(model)                               # in place: names, checkpoints unchanged
    precision = Precision.create(cfg.precision, ctx.device, cfg.fp16_init_scale)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    skips = SkipTracker(cfg.max_consecutive_skips)
    log = MetricsLog(run_dir / "metrics.jsonl", enabled=main)
    step, updates, best, last_eval = 0, 0, None, None
    N = cfg.grad_accum_steps

    # ------------------------------------------------------------------
    # Resume from <run>/checkpoints/latest.pt if there is one
    # ------------------------------------------------------------------
    latest = ckpt_dir / "latest.pt"
    if latest.exists():
        state = ckpt_io.read_checkpoint(latest)
        ckpt_io.restore_training_state(state, latest, model=model, optimizer=optimizer, scheduler=scheduler,
                                       scaler=precision.scaler, data=data, skips=skips, model_config=model_config)
        step, updates, best = state["step"], state["updates"], state["best"]
        changed = config_diff(state["train_config"], config_dict(cfg))
        ctx.say(f"[resume] {latest}: step {step}, {updates} updates, data epoch {state['data']['epoch']} "
                f"batch {state['data']['index']}" + (f"; train config changed: {changed}" if changed else ""))
        log.truncate_after(step)
    elif log.path.exists() and main:
        log.path.unlink()                                   # a fresh run starts a fresh log

    ddp_model = wrap_model(model, ctx.dist, ctx.device)
    params = [p for p in model.parameters() if p.requires_grad]
    world = ctx.dist.world_size
    ctx.say(f"[train] {precision.describe()} · {world} process(es) · effective batch "
            f"{cfg.batch_size} × {N} micro-steps × {world} = {cfg.batch_size * N * world} · "
            f"{sum(p.numel() for p in params):,} trainable parameters · run dir {run_dir}")

    def save(name: str) -> None:
        path = ckpt_dir / name
        ckpt_io.atomic_save(ckpt_io.training_state(
            step=step, updates=updates, model=model, optimizer=optimizer, scheduler=scheduler,
            scaler=precision.scaler, data=data, skips=skips, best=best, model_config=model_config,
            train_config=cfg), path)
        plot_losses(log.read(), run_dir / "loss.png", title=f"{run_dir.name}: loss (step {step})")

    bar = progress_bar(total=cfg.max_steps, initial=step, enabled=main and cfg.progress, desc=run_dir.name)
    while step < cfg.max_steps:
        step += 1
        t0 = time.perf_counter()
        ddp_model.train()
        optimizer.zero_grad(set_to_none=True)
        losses, sums, counts, bad_loss = [], {}, dict.fromkeys(COUNT_KEYS, 0), None

        # --------------------------------------------------------------
        # Micro-steps: forward under autocast, guard 1, scaled backward
        # --------------------------------------------------------------
        for micro in range(N):
            batch = to_device(data.next_batch(), ctx.device)
            with sync_context(ddp_model, final_micro_step=(micro == N - 1)):
                with precision.autocast():
                    loss, metrics = loss_fn(ddp_model, batch)
                reason = validate_loss(loss, cfg.loss_min, cfg.loss_max)           # guard 1: the loss
                if reason is None:
                    precision.scaler.scale(loss / N).backward()                   # loss / N: accumulation
                    losses.append(float(loss.detach()))
                else:
                    bad_loss = bad_loss or f"micro-step {micro}: {reason}"
                    precision.scaler.scale(zero_surrogate(params)).backward()     # keeps ranks in step
            for k, v in metrics.items():
                if k in COUNT_KEYS:
                    counts[k] += int(v)
                else:
                    sums[k] = sums.get(k, 0.0) + float(v) / N

        # --------------------------------------------------------------
        # Guards 2-3: unscale, then check the gradients; skip or step
        # --------------------------------------------------------------
        lr = optimizer.param_groups[0]["lr"]
        scale_before = precision.scaler.get_scale() if precision.uses_scaler else None
        precision.scaler.unscale_(optimizer)                                      # guard 2: BEFORE checks
        norm = grad_norm(params)
        reason = bad_loss or check_gradients(norm, cfg.explode_grad_norm)         # guard 3: explosion
        skipped = any_rank(reason is not None, ctx.dist, ctx.device)
        if skipped:
            reason = reason or "another rank skipped this step"
            optimizer.zero_grad(set_to_none=True)
            precision.scaler.update()              # unscale_ recorded the inf checks: update is safe, needed
        else:
            torch.nn.utils.clip_grads_with_norm_(params, cfg.max_grad_norm, norm)  # guard 4: clip
            precision.scaler.step(optimizer)                                      # 5: step
            precision.scaler.update()
            scheduler.step()
            updates += 1

        # --------------------------------------------------------------
        # Log: metrics.jsonl, progress bar, skip message
        # --------------------------------------------------------------
        mean_loss = sum(losses) / len(losses) if losses else math.nan
        mean_loss = mean_over_ranks(mean_loss, ctx.dist, ctx.device)
        dt = time.perf_counter() - t0
        record = {"kind": "train", "step": step, "loss": mean_loss if math.isfinite(mean_loss) else None,
                  "lr": lr, "grad_norm": float(norm) if math.isfinite(float(norm)) else None,
                  "skipped": reason if skipped else None, "time_s": dt, **sums}
        for k in COUNT_KEYS:
            if counts[k]:
                record[f"{k}_per_s"] = counts[k] * world / dt
        if scale_before is not None:
            record["loss_scale"] = scale_before
        log.append(record)
        bar.update(1)
        rate = next((f"{record[f'{k}_per_s']:.0f} {k}/s" for k in COUNT_KEYS if f"{k}_per_s" in record), "")
        bar.set_postfix_str(f"loss {mean_loss:.4f} · lr {lr:.2e} · {rate}")
        if skipped:
            scale = (f" (loss scale {scale_before:g} → {precision.scaler.get_scale():g})"
                     if scale_before is not None else "")
            ctx.say(f"[guard] step {step} skipped: {reason}{scale}")
            skips.skipped(Skip(step=step, reason=reason, lr=lr, loss_scale=scale_before))  # may raise
        else:
            skips.ok()

        # --------------------------------------------------------------
        # Evaluate (rank 0), keep the best, checkpoint
        # --------------------------------------------------------------
        last_step = step == cfg.max_steps
        if eval_fn is not None and main and (step % cfg.eval_freq == 0 or last_step):
            last_eval = evaluate(eval_fn, unwrap(ddp_model), precision)
            log.append({"kind": "eval", "step": step, **last_eval})
            ctx.say(f"[eval] step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in last_eval.items()))
            if cfg.best_metric is not None:
                if cfg.best_metric not in last_eval:
                    raise KeyError(f"TrainConfig.best_metric={cfg.best_metric!r} is not among eval_fn's "
                                   f"results {sorted(last_eval)}")
                score = last_eval[cfg.best_metric]
                if best is None or (score < best["score"] if cfg.best_mode == "min" else score > best["score"]):
                    best = {"metric": cfg.best_metric, "score": score, "step": step}
                    save("best.pt")
                    ctx.say(f"[checkpoint] new best {cfg.best_metric} {score:.4g} → {ckpt_dir / 'best.pt'}")
        if main and (step % cfg.checkpoint_freq == 0 or last_step):
            save("latest.pt")
    bar.close()

    if main:
        ctx.say(f"[done] {step} steps, {updates} applied, {skips.total} skipped")
        export_weights(ctx, model, model_config, best, step, ckpt_dir, run_dir / "export")
    return TrainResult(step=step, updates=updates, skipped=skips.total, best=best, last_eval=last_eval,
                       run_dir=run_dir)


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
