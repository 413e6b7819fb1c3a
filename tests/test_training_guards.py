"""Each guard of seed 004 forced: NaN / out-of-bounds loss, exploding gradient, fp16 overflow, K skips in a row."""

import pytest
import torch

from omni.training import TrainingDiverged, read_metrics, seed_everything
from omni.training.guards import check_gradients, validate_loss
from training_toy import Toy, ToyConfig, faulty, run, toy_config


def train_records(run_dir):
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "train"]


def test_validate_loss_and_check_gradients_reasons():
    assert validate_loss(torch.tensor(1.5), -1e6, 1e6) is None
    assert validate_loss(torch.tensor(float("nan")), -1e6, 1e6) == "loss is nan"
    assert validate_loss(torch.tensor(float("inf")), -1e6, 1e6) == "loss is inf"
    assert "loss_max" in validate_loss(torch.tensor(2e6), -1e6, 1e6)
    assert "loss_min" in validate_loss(torch.tensor(-2e6), -1e6, 1e6)
    with pytest.raises(ValueError, match="scalar"):
        validate_loss(torch.ones(3), -1e6, 1e6)
    assert check_gradients(torch.tensor(3.0), 100.0) is None
    assert "explode_grad_norm 100" in check_gradients(torch.tensor(250.0), 100.0)
    assert "non-finite" in check_gradients(torch.tensor(float("inf")), 100.0)


def test_nan_loss_skips_the_step_and_training_continues(tmp_path, capsys):
    model, result = run(tmp_path, toy_config(max_steps=4), loss_fn=faulty({2: float("nan")}))
    recs = train_records(tmp_path)
    assert [r["skipped"] is not None for r in recs] == [False, True, False, False]
    assert "loss is nan" in recs[1]["skipped"] and recs[1]["loss"] is None
    assert (result.updates, result.skipped) == (3, 1)
    assert "[guard] step 2 skipped: micro-step 0: loss is nan" in capsys.readouterr().out
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_skipped_step_leaves_the_weights_untouched(tmp_path):
    cfg = toy_config(max_steps=1)
    model, result = run(tmp_path, cfg, loss_fn=faulty({1: 5e6}))        # out of [loss_min, loss_max]
    seed_everything(cfg.seed)
    fresh = Toy(ToyConfig())
    assert result.updates == 0 and "loss_max" in train_records(tmp_path)[0]["skipped"]
    for (name, p), q in zip(model.named_parameters(), fresh.parameters()):
        assert torch.equal(p, q), f"{name} changed on a skipped step"


def test_exploding_gradient_is_skipped_and_logged(tmp_path, capsys):
    _, result = run(tmp_path, toy_config(max_steps=3), loss_fn=faulty({2: 1e5}))
    recs = train_records(tmp_path)
    assert recs[1]["skipped"].startswith("grad norm") and "> explode_grad_norm 100" in recs[1]["skipped"]
    assert recs[1]["grad_norm"] > 100
    assert recs[0]["skipped"] is None and recs[2]["skipped"] is None
    assert result.updates == 2
    assert "[guard] step 2 skipped: grad norm" in capsys.readouterr().out


def test_consecutive_skips_stop_with_a_diagnostic(tmp_path):
    always_nan = faulty({n: float("nan") for n in range(1, 100)})
    with pytest.raises(TrainingDiverged, match=r"3 consecutive optimizer steps skipped") as info:
        run(tmp_path, toy_config(max_steps=50, max_consecutive_skips=3), loss_fn=always_nan)
    assert "step 3: micro-step 0: loss is nan" in str(info.value)
    assert len(train_records(tmp_path)) == 3          # stopped right there, not after 50 steps


def test_a_good_step_resets_the_consecutive_count(tmp_path):
    bad = faulty({1: float("nan"), 2: float("nan"), 4: float("nan"), 5: float("nan")})
    _, result = run(tmp_path, toy_config(max_steps=6, max_consecutive_skips=3), loss_fn=bad)
    assert (result.skipped, result.updates) == (4, 2)


@pytest.mark.skipif(not torch.amp.autocast_mode.is_autocast_available("cpu"), reason="no CPU autocast")
def test_fp16_overflow_is_caught_after_unscale_and_the_scaler_backs_off(tmp_path, capsys):
    # A loss scale of 2^24 makes the scaled fp16 gradients overflow to inf; the guard sees the
    # non-finite norm after unscale_, skips, and scaler.update() halves the scale until it fits.
    cfg = toy_config(max_steps=14, precision="fp16", fp16_init_scale=2.0 ** 24, max_consecutive_skips=12)
    _, result = run(tmp_path, cfg)
    recs = train_records(tmp_path)
    assert "non-finite" in recs[0]["skipped"]
    skipped = [r for r in recs if r["skipped"]]
    scales = [r["loss_scale"] for r in skipped]
    assert scales == [2.0 ** 24 / 2 ** i for i in range(len(scales))], scales   # halved on every skip
    assert recs[-1]["skipped"] is None and result.updates >= 3
    assert recs[-1]["loss_scale"] < 2.0 ** 24
    assert "loss scale 1.67772e+07 → 8.38861e+06" in capsys.readouterr().out
