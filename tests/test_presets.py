"""Presets are found by name from any directory; a --config path stays relative to the current one."""

import subprocess
import sys
from pathlib import Path

import pytest

from omni.models.thinker import ThinkerConfig
from omni.training.config import PRESETS_DIR, TrainConfig, load_preset, preset_path

from omni.training.stage import stage_parser

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {"model": ThinkerConfig, "data": dict, "train": TrainConfig}     # dict: any data section


def test_presets_live_in_the_repository():
    assert PRESETS_DIR == ROOT / "train" / "configs"
    assert preset_path("thinker", "smoke") == ROOT / "train/configs/thinker/smoke.json"


def test_preset_by_name_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = stage_parser("thinker", "doc").parse_args(["--preset", "smoke"])
    assert Path(args.config) == ROOT / "train/configs/thinker/smoke.json"
    preset = load_preset(args.config, SECTIONS)
    assert isinstance(preset["model"], ThinkerConfig)


def test_config_path_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"looked in .*--preset NAME"):
        load_preset("train/configs/thinker/smoke.json", SECTIONS)
    (tmp_path / "mine.json").write_text((ROOT / "train/configs/thinker/smoke.json").read_text())
    args = stage_parser("thinker", "doc").parse_args(["--config", "mine.json"])
    assert load_preset(args.config, SECTIONS)["train"].max_steps >= 1


def test_config_and_preset_exclude_each_other():
    with pytest.raises(SystemExit):
        stage_parser("thinker", "doc").parse_args(["--preset", "smoke", "--config", "x.json"])


def test_unknown_preset_names_the_file_and_the_presets(tmp_path):
    env_path = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "omni", "train", "thinker", "--preset", "nope"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": env_path})
    assert proc.returncode == 2
    assert "no preset 'nope' for stage 'thinker'" in proc.stderr
    assert str(ROOT / "train/configs/thinker/nope.json") in proc.stderr and "'smoke'" in proc.stderr
