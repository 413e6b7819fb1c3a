"""Resume of a real stage after SIGKILL: the audio stage (SpecAugment draws its masks from torch's
global RNG), with gradient accumulation, killed after an epoch boundary and rerun. The resumed
loss sequence must equal an uninterrupted run's exactly (CPU, fp32, one thread each).

The world is 20 training clips in micro-batches of 4 (5 per epoch) with 2 micro-batches per
step, so an epoch ends inside step 3, after step 5, inside step 8, after step 10, ...; checkpoints
every 3 steps. The
run is killed once the log shows step 8, so it resumes from step 6 or later (step 6: data epoch 2,
batch 2), past two reshuffles, with the RNG state the next masks depend on. A resume that left
torch's RNG alone fails here (checked: the losses part at the first step after the checkpoint).
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from omni.training import read_metrics
from stage_world import ROOT, small_world

N_CLIPS, MAX_STEPS, KILL_AT = 20, 24, 8


def tiny_audio_world(world, folder):
    """The first N_CLIPS training clips and 4 validation clips of the shared world (audio by symlink)."""
    folder.mkdir()
    os.symlink(world / "speech", folder / "speech")
    train = (world / "asr_train.jsonl").read_text().splitlines()[:N_CLIPS]
    (folder / "asr_train.jsonl").write_text("\n".join(train) + "\n")
    (folder / "asr_val.jsonl").write_text("\n".join((world / "asr_val.jsonl").read_text().splitlines()[:4]) + "\n")
    return folder


def preset(path):
    p = json.loads((ROOT / "train/configs/audio/smoke.json").read_text())
    p["data"].update(val_clips=4, eval_batch_size=4,
                     spec_augment={"time_masks": 2, "time_width": 10, "freq_masks": 2, "freq_width": 8})
    p["train"].update(max_steps=MAX_STEPS, batch_size=4, grad_accum_steps=2, checkpoint_freq=3, eval_freq=8,
                      warmup_steps=3, precision="fp32", device="cpu")
    path.write_text(json.dumps(p))
    return path


def start(config, world, out):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "train/audio.py"), "--config", str(config), "--data",
                             str(world), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def train_records(out):
    return [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"] if (out / "metrics.jsonl").exists() else []


@pytest.mark.slow
def test_audio_stage_killed_after_an_epoch_boundary_resumes_exactly(tmp_path_factory, tmp_path):
    world = tiny_audio_world(small_world(tmp_path_factory), tmp_path / "world")
    config = preset(tmp_path / "p.json")

    # 1. The uninterrupted reference.
    whole = start(config, world, tmp_path / "whole")
    out, _ = whole.communicate(timeout=240)
    assert whole.returncode == 0, out
    reference = [r["loss"] for r in train_records(tmp_path / "whole")]
    assert len(reference) == MAX_STEPS and all(r is not None for r in reference)

    # 2. The same command, SIGKILLed once step KILL_AT is logged (checkpoints at 3 and 6 are on disk).
    killed = tmp_path / "killed"
    proc = start(config, world, killed)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        steps = [r["step"] for r in train_records(killed)]
        if steps and max(steps) >= KILL_AT:
            break
        assert proc.poll() is None, f"training ended before it could be killed: {proc.communicate()[0]}"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    logged = max(r["step"] for r in train_records(killed))
    assert KILL_AT <= logged < MAX_STEPS, logged

    # 3. Rerun: it resumes from latest.pt past the second reshuffle, and finishes.
    proc = start(config, world, killed)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    resume = next(line for line in out.splitlines() if line.startswith("[resume]"))
    resumed_step = (logged // 3) * 3
    assert f"step {resumed_step}," in resume, resume
    served = resumed_step * 2                                      # micro-batches, 5 per epoch
    epoch = (served - 1) // 5                                      # the next epoch starts on the next batch
    assert epoch >= 2 and f"data epoch {epoch} batch {served - 5 * epoch}" in resume, resume

    steps = [r["step"] for r in train_records(killed)]
    assert steps == list(range(1, MAX_STEPS + 1)), steps           # the log was cut back to the checkpoint
    assert [r["loss"] for r in train_records(killed)] == reference  # exactly equal floats
