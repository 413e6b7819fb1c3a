"""The loop's machinery: configs, device/precision choice, schedule, accumulation, checkpoints, export, plot."""

import json

import pytest
import torch
from PIL import Image

from omni.training import (CheckpointError, TrainConfig, export_safetensors, load_exported, load_preset,
                           read_checkpoint, read_metrics)
from omni import checkpoint as ckpt_io
from omni.training.optim import WarmupCosine
from omni.device import resolve_device, resolve_precision
from omni.training.precision import Precision
from training_toy import Toy, ToyConfig, run, toy_config


# ---------------------------------------------------------------------------
# Config files, device and precision
# ---------------------------------------------------------------------------
def test_preset_unknown_key_and_missing_section_raise(tmp_path):
    good = {"model": {"d_in": 8}, "train": {"max_steps": 3}}
    (tmp_path / "ok.json").write_text(json.dumps(good))
    built = load_preset(tmp_path / "ok.json", {"model": ToyConfig, "train": TrainConfig})
    assert built["train"].max_steps == 3 and built["model"].d_hidden == 16
    (tmp_path / "typo.json").write_text(json.dumps({"model": {}, "train": {"max_stepz": 3}}))
    with pytest.raises(TypeError, match=r"typo.json \[train\].*max_stepz"):
        load_preset(tmp_path / "typo.json", {"model": ToyConfig, "train": TrainConfig})
    with pytest.raises(ValueError, match=r"missing \['model'\]"):
        (tmp_path / "half.json").write_text(json.dumps({"train": {}}))
        load_preset(tmp_path / "half.json", {"model": ToyConfig, "train": TrainConfig})
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")


def test_device_and_precision_choice():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda.is_available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unsupported training device"):
        resolve_device("xla")
    assert not Precision.create("bf16", torch.device("cpu")).uses_scaler      # the scaler is for fp16 only
    assert not Precision.create("fp32", torch.device("cpu")).uses_scaler
    assert Precision.create("fp16", torch.device("cpu")).uses_scaler


def test_bf16_autocast_agrees_with_fp32():
    torch.manual_seed(0)
    model, x = Toy(ToyConfig()), torch.randn(16, 8)
    ref = model(x)
    with Precision.create("bf16", torch.device("cpu")).autocast():
        low = model(x)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, atol=3e-2, rtol=3e-2)


def test_warmup_then_cosine_schedule():
    f = WarmupCosine(warmup_steps=4, total_steps=14, min_ratio=0.1)
    assert [f(u) for u in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == pytest.approx(0.55) and f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)


# ---------------------------------------------------------------------------
# Gradient accumulation: N micro-batches of b == one batch of N·b
# ---------------------------------------------------------------------------
def test_accumulation_equals_one_big_batch(tmp_path):
    small, res_a = run(tmp_path / "accum", toy_config(max_steps=3, batch_size=4, grad_accum_steps=3))
    big, res_b = run(tmp_path / "big", toy_config(max_steps=3, batch_size=12, grad_accum_steps=1))
    assert res_a.updates == res_b.updates == 3
    for (name, p), q in zip(small.named_parameters(), big.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=f"{name} differs")
    la = [r["loss"] for r in read_metrics(tmp_path / "accum/metrics.jsonl")]
    lb = [r["loss"] for r in read_metrics(tmp_path / "big/metrics.jsonl")]
    assert la == pytest.approx(lb, abs=1e-6)


# ---------------------------------------------------------------------------
# Checkpoints: contents, best, atomicity, strict loading, export
# ---------------------------------------------------------------------------
def test_checkpoint_contents_best_and_plot(tmp_path):
    evals = iter([3.0, 1.0, 2.0])
    cfg = toy_config(max_steps=6, checkpoint_freq=4, eval_freq=2, best_metric="val_loss")
    _, result = run(tmp_path, cfg, eval_fn=lambda model: {"val_loss": next(evals)})
    ck = read_checkpoint(tmp_path / "checkpoints/latest.pt")
    assert {"model", "optimizer", "scheduler", "scaler", "data", "rng", "model_config", "train_config"} <= set(ck)
    assert ck["step"] == 6 and ck["data"] == {"epoch": 0, "index": 6, "seed": 7, "global_batch": 4,
                                               "dataset_len": 64, "bucket_pool": 0}
    assert {"python", "numpy", "torch"} <= set(ck["rng"]) and ck["model_config"] == {"d_in": 8, "d_hidden": 16}
    assert ck["train_config"]["max_steps"] == 6
    assert result.best == {"metric": "val_loss", "score": 1.0, "step": 4}
    assert read_checkpoint(tmp_path / "checkpoints/best.pt")["step"] == 4
    with Image.open(tmp_path / "loss.png") as img:
        img.load()
        assert img.size == (720, 440) and img.format == "PNG"
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 20)) > 4   # axes, curves, text: not blank


def exported_weights(folder):
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("choice", ["best", "last"])
def test_export_holds_best_pt_by_default_or_the_last_step(tmp_path, capsys, choice):
    # val_loss is best at step 2 of 6, so best.pt and the last step's weights differ (lr 1e-2, 4 updates apart)
    evals = iter([1.0, 2.0, 3.0])
    cfg = toy_config(max_steps=6, eval_freq=2, best_metric="val_loss", export=choice)
    model, result = run(tmp_path, cfg, eval_fn=lambda model: {"val_loss": next(evals)})
    assert result.best == {"metric": "val_loss", "score": 1.0, "step": 2}
    best = read_checkpoint(tmp_path / "checkpoints/best.pt")["model"]
    last = model.state_dict()
    got = exported_weights(tmp_path / "export")
    want, other = (best, last) if choice == "best" else (last, best)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert any(not torch.equal(got[k], other[k]) for k in got), "best and last weights should differ here"
    fields, provenance = ckpt_io.read_export_config(tmp_path / "export/config.json")
    assert fields == {"d_in": 8, "d_hidden": 16}
    lines = capsys.readouterr().out.strip().splitlines()
    if choice == "best":
        assert provenance == {"weights": "best", "checkpoint": "best.pt", "metric": "val_loss", "score": 1.0,
                              "step": 2}
        assert lines[-1] == f"[export] best.pt (val_loss 1 at step 2) → {tmp_path / 'export'}"
    else:
        assert provenance == {"weights": "last", "step": 6}
        assert lines[-1] == f"[export] the last step's weights (step 6; train.export is 'last') → {tmp_path / 'export'}"
    assert lines[-2].startswith("[done] 6 steps, 6 applied")
    again = load_exported(tmp_path / "export", Toy, ToyConfig)        # the strict loader accepts "_export"
    for k, v in again.state_dict().items():
        assert torch.equal(v, want[k]), k
    for k, v in model.state_dict().items():                           # exporting best.pt left the model alone
        assert torch.equal(v, last[k]), k


def test_export_without_a_best_metric_is_the_last_step(tmp_path, capsys):
    model, _ = run(tmp_path, toy_config(max_steps=3))
    assert ckpt_io.read_export_config(tmp_path / "export/config.json")[1] == {"weights": "last", "step": 3}
    assert "no best.pt: train.best_metric is not set" in capsys.readouterr().out
    with pytest.raises(ValueError, match="TrainConfig.export must be 'best' or 'last', got 'newest'"):
        toy_config(export="newest")


def test_crash_during_save_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    run(tmp_path, toy_config(max_steps=4, checkpoint_freq=2))
    path = tmp_path / "checkpoints/latest.pt"
    assert read_checkpoint(path)["step"] == 4

    class Killed(BaseException):
        pass

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 half a zip file")             # some bytes reach the disk, then the process dies
        raise Killed

    monkeypatch.setattr(ckpt_io.torch, "save", dies_halfway)
    with pytest.raises(Killed):
        ckpt_io.atomic_save({"format": 1, "step": 5}, path)
    monkeypatch.undo()
    assert (tmp_path / "checkpoints/latest.pt.tmp").exists()          # the torn write stayed in the temp file
    assert read_checkpoint(path)["step"] == 4                         # latest.pt is the old, whole checkpoint
    path.write_bytes(path.read_bytes()[:200])                         # a torn file is a clear error
    with pytest.raises(CheckpointError, match="latest.pt: not a readable checkpoint"):
        read_checkpoint(path)


def test_strict_loading_names_file_and_keys(tmp_path):
    run(tmp_path, toy_config(max_steps=2))
    ck = read_checkpoint(tmp_path / "checkpoints/latest.pt")
    wider = Toy(ToyConfig(d_hidden=32))
    with pytest.raises(CheckpointError, match=r"ckpt does not match Toy: shape mismatches \[net.0.bias"):
        ckpt_io.load_model_state(wider, ck["model"], "ckpt")
    state = dict(ck["model"])
    state["net.9.weight"] = state.pop("net.2.weight")
    with pytest.raises(CheckpointError, match=r"missing keys \['net.2.weight'\], unexpected keys \['net.9.weight'\]"):
        ckpt_io.load_model_state(Toy(ToyConfig()), state, "ckpt")
    with pytest.raises(CheckpointError, match=r"latest.pt: model config differs.*d_hidden: checkpoint 16 vs now 32"):
        ckpt_io.check_model_config(ck, ToyConfig(d_hidden=32), tmp_path / "checkpoints/latest.pt")
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        read_checkpoint(tmp_path / "nowhere.pt")


def test_resume_refuses_a_different_model(tmp_path):
    run(tmp_path, toy_config(max_steps=2))
    from omni.training import ShuffledBatches, fit, setup
    from training_toy import mse_loss, toy_dataset
    cfg = toy_config(max_steps=4)
    ctx = setup(cfg)
    model = Toy(ToyConfig(d_hidden=32))
    with pytest.raises(CheckpointError, match="model config differs"):
        fit(ctx, model, mse_loss, ShuffledBatches(toy_dataset(), 4, 7), run_dir=tmp_path, model_config=model.cfg)


def test_safetensors_export_round_trip_and_strict_errors(tmp_path):
    model, _ = run(tmp_path / "run", toy_config(max_steps=2))
    again = load_exported(tmp_path / "run/export", Toy, ToyConfig)
    for (name, p), q in zip(model.named_parameters(), again.parameters()):
        assert torch.equal(p, q), name
    export_safetensors(Toy(ToyConfig(d_hidden=4)), ToyConfig(d_hidden=16), tmp_path / "liar")  # config lies
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match Toy: shape mismatches"):
        load_exported(tmp_path / "liar", Toy, ToyConfig)
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        load_exported(tmp_path / "empty", Toy, ToyConfig)


def test_length_buckets_cut_padding_visit_every_item_once_and_resume():
    from omni.training import ShuffledBatches
    g = torch.Generator().manual_seed(0)
    lengths = (0.6 + 3.8 * torch.rand(960, generator=g)).tolist()           # seconds, as the world's clips
    items = list(range(len(lengths)))

    def padding(batches) -> float:
        total = pad = 0.0
        for b in batches:
            longest = max(lengths[i] for i in b)
            total, pad = total + longest * len(b), pad + sum(longest - lengths[i] for i in b)
        return pad / total

    plain = ShuffledBatches(items, 16, 3, collate_fn=list)
    buckets = ShuffledBatches(items, 16, 3, collate_fn=list, lengths=lengths, bucket_pool=10)
    epoch = [buckets.next_batch() for _ in range(buckets.batches_per_epoch)]
    assert sorted(i for b in epoch for i in b) == items                     # every item once per epoch
    assert padding(epoch) < 0.1 < padding([plain.next_batch() for _ in range(plain.batches_per_epoch)])
    means = [sum(lengths[i] for i in b) / len(b) for b in epoch]
    descents = sum(a > b for a, b in zip(means, means[1:]))
    assert descents > len(epoch) // 4    # batches shuffled, not each pool's in rising length (5 descents)
    state = buckets.state_dict()
    resumed = ShuffledBatches(items, 16, 3, collate_fn=list, lengths=lengths, bucket_pool=10)
    resumed.load_state_dict(state)
    assert [resumed.next_batch() for _ in range(5)] == [buckets.next_batch() for _ in range(5)]
    with pytest.raises(ValueError, match="bucket_pool"):
        plain.load_state_dict(state)                                         # a different order: refused
    with pytest.raises(ValueError, match="one length per item"):
        ShuffledBatches(items, 16, 3, lengths=lengths[:-1])
