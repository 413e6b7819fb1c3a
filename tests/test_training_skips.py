"""A skipped step changes nothing it must not: weights, both AdamW moments, the optimizer's step
counter, the scheduler and the learning rate are, by value, what they were before the step.

Each kind of skip of seed 004 is forced on step K of a toy run that ends at step K, after K - 1
good steps have filled the optimizer's moments: a NaN loss, a loss out of bounds, an exploding
gradient, and an fp16 overflow under the GradScaler (CPU autocast). The state before step K is
copied inside the loss function at step K's first micro-step (nothing of step K has run yet);
the state after it is what ``checkpoints/latest.pt`` holds at the end of the run.
"""

import copy

import pytest
import torch

from omni.training import loop, read_checkpoint, read_metrics
from omni.training.optim import build_optimizer, build_scheduler
from training_toy import mse_loss, run, toy_config

K = 4     # the step that is skipped (and the last one)


def hold_optimizer_and_scheduler(monkeypatch) -> dict:
    """Let the test see the optimizer and scheduler fit() builds."""
    held = {}

    def optimizer(model, cfg):
        held["optimizer"] = build_optimizer(model, cfg)
        return held["optimizer"]

    def scheduler(opt, cfg):
        held["scheduler"] = build_scheduler(opt, cfg)
        return held["scheduler"]

    monkeypatch.setattr(loop, "build_optimizer", optimizer)
    monkeypatch.setattr(loop, "build_scheduler", scheduler)
    return held


def snapshot(model, held) -> dict:
    return {"model": copy.deepcopy(model.state_dict()),
            "optimizer": copy.deepcopy(held["optimizer"].state_dict()),
            "scheduler": copy.deepcopy(held["scheduler"].state_dict()),
            "lr": [g["lr"] for g in held["optimizer"].param_groups]}


def faulty_at_step_k(held, before, factor: float, micro_steps: int, bad_micro: int):
    """mse_loss; step K's micro-step ``bad_micro`` is multiplied by ``factor`` and, first of all,
    the state before step K is copied into ``before``."""
    calls = [0]

    def loss_fn(model, batch):
        calls[0] += 1
        if calls[0] == (K - 1) * micro_steps + 1:
            before.update(snapshot(model, held))
        loss, metrics = mse_loss(model, batch)
        if calls[0] == (K - 1) * micro_steps + 1 + bad_micro:
            loss = loss * factor
        return loss, metrics
    return loss_fn


def assert_unchanged(before: dict, ckpt: dict, held: dict) -> None:
    for name, value in before["model"].items():
        assert torch.equal(ckpt["model"][name], value), f"weight {name} changed on a skipped step"
    old, new = before["optimizer"]["state"], ckpt["optimizer"]["state"]
    assert sorted(old) == sorted(new) and len(old) > 0
    for i in old:
        assert float(old[i]["step"]) == K - 1, "the K - 1 good steps were not all applied"
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(new[i][key], old[i][key]), f"AdamW {key} of parameter {i} changed"
        assert old[i]["exp_avg_sq"].abs().sum() > 0            # the moments hold something to lose
    assert ckpt["scheduler"]["last_epoch"] == before["scheduler"]["last_epoch"] == K - 1
    assert ckpt["scheduler"]["_last_lr"] == before["scheduler"]["_last_lr"]
    assert [g["lr"] for g in ckpt["optimizer"]["param_groups"]] == before["lr"]
    assert [g["lr"] for g in held["optimizer"].param_groups] == before["lr"]


SKIPS = {   # kind → (TrainConfig changes, loss factor at step K, expected start of the skip reason)
    "nan loss": ({}, float("nan"), "loss is nan"),
    "loss above loss_max": ({}, 5e6, "loss"),
    "exploding gradient": ({}, 1e5, "grad norm"),
    "fp16 overflow": ({"precision": "fp16", "loss_max": 1e38}, 1e30, "(non-finite gradients)"),
}


@pytest.mark.parametrize("micro_steps,bad_micro", [(1, 0), (2, 1)], ids=["no-accum", "accum-2nd-micro"])
@pytest.mark.parametrize("kind", list(SKIPS))
def test_a_skipped_step_leaves_weights_moments_step_and_lr_untouched(tmp_path, monkeypatch, kind, micro_steps,
                                                                     bad_micro):
    changes, factor, reason = SKIPS[kind]
    if changes.get("precision") == "fp16" and not torch.amp.autocast_mode.is_autocast_available("cpu"):
        pytest.skip("no CPU autocast in this torch")
    held, before = hold_optimizer_and_scheduler(monkeypatch), {}
    cfg = toy_config(max_steps=K, warmup_steps=10, grad_accum_steps=micro_steps, checkpoint_freq=1000, **changes)
    model, result = run(tmp_path, cfg, loss_fn=faulty_at_step_k(held, before, factor, micro_steps, bad_micro))

    recs = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["skipped"] is not None for r in recs] == [False] * (K - 1) + [True], recs
    assert reason in recs[-1]["skipped"], recs[-1]["skipped"]
    assert (result.updates, result.skipped) == (K - 1, 1)
    lrs = [r["lr"] for r in recs]
    assert lrs == sorted(set(lrs)), lrs                          # warm-up: every applied update moves the lr
    assert before["lr"] == [lrs[-1]] * 2                         # both param groups
    ckpt = read_checkpoint(tmp_path / "checkpoints/latest.pt")
    assert ckpt["step"] == K and ckpt["updates"] == K - 1
    assert_unchanged(before, ckpt, held)
    for name, value in model.state_dict().items():              # and the live model too
        assert torch.equal(value, before["model"][name]), name
    if changes.get("precision") == "fp16":                      # the scaler alone moves: it backs off
        assert recs[-1]["loss_scale"] == cfg.fp16_init_scale
        assert ckpt["scaler"]["scale"] == cfg.fp16_init_scale / 2
