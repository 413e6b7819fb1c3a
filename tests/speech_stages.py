"""Fixtures shared by tests/test_stage_codec*.py, test_stage_talker.py and test_stage_vocoder.py.

One small world and one codec smoke run per session: the Talker stage trains on
that codec's codes, so the two test modules chain through these. Results are
cached here, in the module, so importing the fixtures into two test modules
still builds each only once.
"""

from pathlib import Path

import pytest
import torch

from omni import cli

ROOT = Path(__file__).resolve().parents[1]
CODEC_SMOKE = ROOT / "train/configs/codec/smoke.json"
CODEC_CONV_SMOKE = ROOT / "train/configs/codec/smoke_conv.json"
TALKER_SMOKE = ROOT / "train/configs/talker/smoke.json"
VOCODER_SMOKE = ROOT / "train/configs/vocoder/smoke.json"
_CACHE: dict[str, Path] = {}


def train(stage: str, *args: str) -> None:
    """``omni train <stage> ...`` in this process, on one thread (a shared 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = cli.main(["train", stage, *args, "--device", "cpu"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0, f"omni train {stage} {' '.join(args)} exited with {rc}"


@pytest.fixture(scope="session")
def speech_world(tmp_path_factory) -> Path:
    from stage_world import small_world      # one small world for every stage test (read only)

    return small_world(tmp_path_factory)


def smoke_run(key: str, stage: str, config: Path, world: Path, tmp_path_factory) -> Path:
    """One ``omni train <stage> --config <config>`` run per session, cached under ``key``."""
    if key not in _CACHE:
        run = tmp_path_factory.mktemp(key) / "run"
        train(stage, "--config", str(config), "--data", str(world), "--out", str(run))
        _CACHE[key] = run
    return _CACHE[key]


@pytest.fixture(scope="session")
def codec_run(speech_world, tmp_path_factory) -> Path:
    return smoke_run("codec", "codec", CODEC_SMOKE, speech_world, tmp_path_factory)


@pytest.fixture(scope="session")
def codec_conv_run(speech_world, tmp_path_factory) -> Path:
    return smoke_run("codec_conv", "codec", CODEC_CONV_SMOKE, speech_world, tmp_path_factory)


@pytest.fixture(scope="session")
def vocoder_run(speech_world, tmp_path_factory) -> Path:
    return smoke_run("vocoder", "vocoder", VOCODER_SMOKE, speech_world, tmp_path_factory)
