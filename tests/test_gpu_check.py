"""benchmarks/gpu_check.py (`make gpu-check`): one line and exit 0 without CUDA; and its whole
machinery (stage runs under bf16 and fp16 + GradScaler, cached decoding, the table) on the
smoke presets on the CPU, since no GPU runs the real thing in the test suite."""

import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks/gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                   # its dataclass looks the module up there
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "runs")], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no CUDA device") and "nothing checked" in lines[0]
    assert not (tmp_path / "runs").exists()                       # nothing built, nothing trained


def test_makefile_has_the_target():
    text = (ROOT / "Makefile").read_text()
    assert "gpu-check:" in text and "benchmarks/gpu_check.py" in text and "gpu-check" in text.split(".PHONY:")[1].split("\n")[0]


@pytest.mark.slow
def test_the_check_runs_stages_in_both_precisions_and_decodes_on_cpu_smoke(tmp_path, tmp_path_factory, capsys):
    from stage_world import small_world

    gpu_check = load_script()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = gpu_check.main(["--device", "cpu", "--preset", "smoke", "--steps", "4", "--stages", "thinker,audio",
                             "--world", str(small_world(tmp_path_factory)), "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    table = out[out.rindex("stage     prec"):].strip().splitlines()
    rows = {tuple(line.split()[:2]): line.split() for line in table[1:-1]}
    assert rc == 0 and "6 of 6 rows ok" in table[-1], out[-3000:]
    assert set(rows) == {("thinker", "bf16"), ("thinker↻", "bf16"), ("thinker", "fp16"), ("thinker↻", "fp16"),
                         ("audio", "bf16"), ("audio", "fp16")}
    for (stage, precision), cols in rows.items():
        assert "FAILED:" not in cols, cols
        steps, steps_per_s, rate, unit = int(cols[2]), float(cols[3]), float(cols[4].replace(",", "")), cols[5]
        assert steps_per_s > 0 and rate > 0
        if stage.endswith("↻"):
            assert unit == "tokens/s" and steps == 48                      # ctx_len 64 − the 16-token prompt
        else:
            assert steps == 4 and math.isfinite(float(cols[8]))                 # every step ran, a real loss
            if precision == "bf16":
                assert int(cols[7]) == 0, cols                                   # bf16 needs no loss scaling
            else:   # fp16: GradScaler may skip an overflowing step, and must then lower its scale
                records = [json.loads(line) for line in (tmp_path / f"{stage}-fp16" / "metrics.jsonl").open()]
                train = [r for r in records if r["kind"] == "train"]
                assert int(cols[7]) == sum(r["skipped"] is not None for r in train) < len(train), cols
                for before, after in zip(train, train[1:]):
                    if before["skipped"] is not None:
                        assert "non-finite gradients" in before["skipped"], before
                        assert after["loss_scale"] < before["loss_scale"], (before, after)
            assert unit == ("tokens/s" if stage == "thinker" else "samples/s")


def test_a_failing_stage_is_tabled_then_raised_naming_it(tmp_path, monkeypatch, capsys):
    gpu_check = load_script()
    world = tmp_path / "world"
    world.mkdir()
    (world / "card.json").write_text("{}")

    def broken(argv):
        raise ValueError("preset key train.lr is negative")

    monkeypatch.setitem(gpu_check.STAGES, "thinker", dataclasses.replace(gpu_check.STAGES["thinker"], train=broken))
    with pytest.raises(gpu_check.GpuCheckFailed, match="2 of 2 rows failed: thinker bf16: ValueError: preset key") as err:
        gpu_check.main(["--device", "cpu", "--preset", "smoke", "--stages", "thinker", "--world", str(world),
                        "--out", str(tmp_path / "out")])
    assert isinstance(err.value.__cause__, ValueError)
    out = capsys.readouterr().out
    assert "thinker   fp16  FAILED: ValueError: preset key train.lr is negative" in out
    assert "0 of 2 rows ok" in out and "FAILED: thinker bf16, thinker fp16" in out
