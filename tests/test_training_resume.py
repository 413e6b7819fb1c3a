"""Resume after a real kill: SIGKILL a training process mid-run, rerun it, and get the same losses.

The reference is an uninterrupted run; both use CPU fp32 with one thread, so the
resumed loss sequence must be *identical*, not merely close.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from omni.training import read_metrics
from training_toy import run, toy_config

ROOT = Path(__file__).resolve().parents[1]
TOY = Path(__file__).with_name("training_toy.py")


def losses(run_dir):
    return [r["loss"] for r in read_metrics(Path(run_dir) / "metrics.jsonl") if r["kind"] == "train"]


def start(run_dir, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(TOY), str(run_dir), "--max-steps", "12",
                             "--checkpoint-freq", "4", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
    # 1. Start a run that would take 12 steps; SIGKILL it once the metrics file shows step 6.
    killed = tmp_path / "killed"
    proc = start(killed, "--sleep", "0.05")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [r["step"] for r in read_metrics(killed / "metrics.jsonl")]
        if done and max(done) >= 6:
            break
        assert proc.poll() is None, f"training exited early: {proc.communicate()[0]}"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    steps_before_kill = max(r["step"] for r in read_metrics(killed / "metrics.jsonl"))
    assert 6 <= steps_before_kill < 12, steps_before_kill

    # 2. Rerun the same command: it resumes from checkpoints/latest.pt (step 4 or 8) and finishes.
    proc = start(killed)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "[resume]" in out and "finished: 12 steps" in out

    # 3. An uninterrupted run (in this process, one thread like the subprocess) gives the same losses.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(tmp_path / "whole", toy_config(max_steps=12, checkpoint_freq=4))
    finally:
        torch.set_num_threads(threads)
    steps = [r["step"] for r in read_metrics(killed / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == list(range(1, 13)), steps                 # the log was cut back to the checkpoint
    assert losses(killed) == losses(tmp_path / "whole")       # exactly equal floats
