"""DDP: two gloo processes under torchrun, batch b each, equal one process with batch 2b.

Rank 1 alone meets a NaN loss in step 2: the skip decision must be shared (both ranks skip),
just as the single process with the combined batch skips that step.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from omni.training import load_exported, read_metrics
from training_toy import Toy, ToyConfig, faulty, run, toy_config

ROOT = Path(__file__).resolve().parents[1]
TOY = Path(__file__).with_name("training_toy.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process_with_the_combined_batch(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "--monitor-interval", "0.1",
           str(TOY), str(tmp_path / "ddp"), "--max-steps", "3",
           "--batch-size", "2", "--grad-accum-steps", "2",           # accumulation exercises no_sync()
           "--nan-call", "3", "--nan-rank", "1"]                     # rank 1 alone sees a NaN loss in step 2
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 process(es) · effective batch 2 × 2 micro-steps × 2 = 8" in proc.stdout

    # One process, combined batch, NaN on the same micro-step: both must skip step 2 and agree elsewhere.
    single, result = run(tmp_path / "single", toy_config(max_steps=3, batch_size=4, grad_accum_steps=2),
                         loss_fn=faulty({3: float("nan")}))
    assert (result.updates, result.skipped) == (2, 1)
    ddp = load_exported(tmp_path / "ddp/export", Toy, ToyConfig)
    for (name, p), q in zip(single.named_parameters(), ddp.parameters()):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=0, msg=f"{name}: DDP update differs")
    ddp_recs = read_metrics(tmp_path / "ddp/metrics.jsonl")
    one_recs = read_metrics(tmp_path / "single/metrics.jsonl")
    assert ddp_recs[1]["skipped"] == "another rank skipped this step"        # rank 0's own loss was fine
    assert [r["skipped"] is None for r in ddp_recs] == [True, False, True]
    for a, b in zip(ddp_recs, one_recs):
        if a["skipped"] is None:
            assert abs(a["loss"] - b["loss"]) < 1e-6


def torchrun(script: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "--monitor-interval", "0.1", str(script), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_thinker_fused_loss_through_ddp_equals_one_process_and_bypassing_ddp_does_not(tmp_path):
    """fit(..., train_module=NextTokenLoss(model)): DDP wraps the loss module, so the fused cross-entropy's
    gradients are all-reduced; calling the module inside the wrapper instead (--bypass) trains each rank alone."""
    from thinker_ddp_toy import TINY, run as run_thinker
    from omni.models.thinker import ThinkerLM

    script = Path(__file__).with_name("thinker_ddp_toy.py")
    torchrun(script, str(tmp_path / "ddp"), "--batch-size", "2")
    torchrun(script, str(tmp_path / "bypass"), "--batch-size", "2", "--bypass")
    single, _ = run_thinker(tmp_path / "single", batch_size=4)
    ddp = load_exported(tmp_path / "ddp/export", ThinkerLM, type(TINY))
    bypass = load_exported(tmp_path / "bypass/export", ThinkerLM, type(TINY))
    for (name, p), q in zip(single.named_parameters(), ddp.parameters()):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=0, msg=lambda m: f"{name}: DDP update differs: {m}")
    apart = max(float((q - p).detach().abs().max()) for p, q in zip(single.parameters(), bypass.parameters()))
    assert apart > 1e-4, f"without DDP's forward the ranks should train apart; largest difference {apart:.2e}"
