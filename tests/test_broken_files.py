"""Every kind of file the project reads, broken: the CLI ends in ONE line naming the file and what is
wrong (no traceback unless OMNI_DEBUG=1), and the broken file, and everything else already on disk,
is left as it was.

Kinds: JSONL manifests, presets, tokenizer models, training checkpoints (.pt), exports
(model.safetensors and config.json), audio and images. Ways to break one: missing, empty,
truncated, corrupt (bytes that are not the format) and, where the format has keys, an unknown or
misspelt key.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from omni.audio.io import save_audio
from omni.cli import main
from omni.models.asr import ASRConfig, ASRModel
from omni.models.audio_encoder import AudioEncoderConfig
from omni.models.omni_model import OmniConfig, OmniModel
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.models.vision import VisionConfig
from omni.tokenizer import BPETokenizer
from omni.training import export_safetensors
from stage_world import ROOT, run_stage, small_world

GARBAGE = b"\x00\xffnot this format\xfe" * 8
THINKER = dict(vocab_size=320, ctx_len=96, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (symlinks not followed) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def run_broken(capsys, folder: Path, *argv) -> str:
    """Run the CLI; check it failed with one line of stderr, no traceback, and touched nothing in folder."""
    before = snapshot(folder)
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 1, (rc, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert snapshot(folder) == before, "a file on disk was changed"
    return lines[0]


def break_file(path: Path, how: str, good: bytes) -> None:
    if how == "missing":
        path.unlink(missing_ok=True)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "corrupt":
        path.write_bytes(GARBAGE)
    else:
        raise ValueError(how)


# ---------------------------------------------------------------------------
# tiny things to break (made once)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return small_world(tmp_path_factory)


@pytest.fixture(scope="module")
def tokenizer(world, tmp_path_factory):
    return BPETokenizer.train(world / "tokenizer_corpus.txt", tmp_path_factory.mktemp("tok") / "tok.model",
                              vocab_size=320)


@pytest.fixture(scope="module")
def thinker_export(tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    cfg = ThinkerConfig(**THINKER)
    folder = export_safetensors(ThinkerLM(cfg), cfg, tmp_path_factory.mktemp("exports") / "thinker")
    shutil.copyfile(tokenizer.path, folder / "tokenizer.model")
    return folder


@pytest.fixture(scope="module")
def omni_export(tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    cfg = OmniConfig(thinker=ThinkerConfig(**THINKER),
                     vision=VisionConfig(image_size=32, patch_size=16, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64),
                     audio=AudioEncoderConfig(conv_channels=4, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64))
    folder = export_safetensors(OmniModel(cfg), cfg, tmp_path_factory.mktemp("exports") / "omni_sft")
    shutil.copyfile(tokenizer.path, folder / "tokenizer.model")
    return folder


@pytest.fixture(scope="module")
def asr_export(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ASRConfig(encoder=AudioEncoderConfig(conv_channels=4, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64))
    return export_safetensors(ASRModel(cfg), cfg, tmp_path_factory.mktemp("exports") / "audio")


@pytest.fixture(scope="module")
def thinker_run(world, tmp_path_factory):
    """A real two-step thinker run: its checkpoints/latest.pt is the checkpoint to break."""
    out = tmp_path_factory.mktemp("thinker-run") / "run"
    assert run_stage("thinker", ["--config", str(ROOT / "train/configs/thinker/smoke.json"), "--data", str(world),
                                 "--out", str(out), "--device", "cpu", "--max-steps", "2"]) == 0
    return out


# ---------------------------------------------------------------------------
# manifests (JSONL)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("how,says", [("missing", "manifest not found"), ("empty", "empty manifest"),
                                      ("truncated", "invalid JSON"), ("corrupt", "not UTF-8 text"),
                                      ("unknown key", "unknown keys ['speeker']")])
def test_broken_manifest(capsys, tmp_path, world, how, says):
    good = (world / "asr_train.jsonl").read_bytes()
    path = tmp_path / "asr_train.jsonl"
    if how == "unknown key":
        path.write_bytes(good.replace(b'"speaker"', b'"speeker"', 1))
    else:
        path.write_bytes(good)
        break_file(path, how, good.splitlines(keepends=True)[0] * 3)
    line = run_broken(capsys, tmp_path, "data", "check", path, "--task", "asr")
    assert str(path) in line and says in line, line


# ---------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("how,says", [("missing", "config file not found"), ("empty", "empty file"),
                                      ("truncated", "not valid JSON"), ("corrupt", "not valid JSON"),
                                      ("unknown key", "unexpected keyword argument 'max_stepz'"),
                                      ("impossible value", "d_model 64 not divisible by n_heads 3")])
def test_broken_preset(capsys, tmp_path, world, how, says):
    good = (ROOT / "train/configs/thinker/smoke.json").read_bytes()
    path = tmp_path / "preset.json"
    if how == "unknown key":
        path.write_bytes(good.replace(b'"max_steps"', b'"max_stepz"'))
    elif how == "impossible value":
        path.write_bytes(good.replace(b'"n_heads": 2', b'"n_heads": 3'))
    else:
        path.write_bytes(good)
        break_file(path, how, good)
    line = run_broken(capsys, tmp_path, "train", "thinker", "--config", path, "--data", world,
                      "--out", tmp_path / "run", "--device", "cpu")
    assert str(path) in line and says in line, line
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------
# tokenizer models, exports (config.json, model.safetensors): omni chat --text-only
# ---------------------------------------------------------------------------
EXPORT_CASES = [
    ("tokenizer.model", "missing", "missing tokenizer.model"),
    ("tokenizer.model", "empty", "empty file"),
    ("tokenizer.model", "truncated", "not a SentencePiece tokenizer model"),
    ("tokenizer.model", "corrupt", "not a SentencePiece tokenizer model"),
    ("model.safetensors", "missing", "missing model.safetensors"),
    ("model.safetensors", "empty", "empty file"),
    ("model.safetensors", "truncated", "not readable safetensors weights"),
    ("model.safetensors", "corrupt", "not readable safetensors weights"),
    ("config.json", "missing", "missing config.json"),
    ("config.json", "empty", "empty file"),
    ("config.json", "truncated", "not valid JSON"),
    ("config.json", "corrupt", "not valid JSON"),
    ("config.json", "unknown key", "unexpected keyword argument 'd_modle'"),
]


@pytest.mark.parametrize("name,how,says", EXPORT_CASES, ids=[f"{n}-{h}" for n, h, _ in EXPORT_CASES])
def test_broken_export_file(capsys, tmp_path, thinker_export, name, how, says):
    folder = tmp_path / "export"
    shutil.copytree(thinker_export, folder)
    path, good = folder / name, (folder / name).read_bytes()
    if how == "unknown key":
        cfg = json.loads(good)
        cfg["d_modle"] = cfg.pop("d_model")
        path.write_text(json.dumps(cfg))
    else:
        break_file(path, how, good)
    line = run_broken(capsys, tmp_path, "chat", "hello", "--text-only", "--ckpt", folder, "--max-tokens", 2,
                      "--device", "cpu")
    named = str(folder) if how == "missing" else str(path)         # a missing file: its folder and its name
    assert named in line and says in line, line


# ---------------------------------------------------------------------------
# training checkpoints (.pt): omni train resumes from checkpoints/latest.pt
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("how,says", [("empty", "empty file"), ("truncated", "not a readable checkpoint"),
                                      ("corrupt", "not a readable checkpoint"),
                                      ("unknown key", "lacks ['optimizer'] and has unknown keys ['optimiser']")])
def test_broken_training_checkpoint(capsys, tmp_path, world, thinker_run, how, says):
    run = tmp_path / "run"
    shutil.copytree(thinker_run, run)
    path = run / "checkpoints/latest.pt"
    good = path.read_bytes()
    if how == "unknown key":
        ckpt = torch.load(path, weights_only=True)
        ckpt["optimiser"] = ckpt.pop("optimizer")
        torch.save(ckpt, path)
    else:
        break_file(path, how, good)
    line = run_broken(capsys, tmp_path, "train", "thinker", "--config", ROOT / "train/configs/thinker/smoke.json",
                      "--data", world, "--out", run, "--device", "cpu", "--max-steps", "4")
    assert str(path) in line and says in line, line


# ---------------------------------------------------------------------------
# audio: omni asr
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("how,says", [("missing", "audio file not found"), ("empty", "cannot decode audio file"),
                                      ("truncated header", "cannot decode audio file"),
                                      ("truncated", "is truncated: its header and its length disagree"),
                                      ("corrupt", "cannot decode audio file")])
def test_broken_audio(capsys, tmp_path, asr_export, how, says):
    path = tmp_path / "clip.wav"
    save_audio(path, 0.1 * np.random.default_rng(0).standard_normal(8000).astype(np.float32), 16_000)
    good = path.read_bytes()
    if how == "truncated header":
        path.write_bytes(good[:30])
    else:
        break_file(path, how, good)
    line = run_broken(capsys, tmp_path, "asr", path, "--ckpt", asr_export, "--device", "cpu")
    assert str(path) in line and says in line, line


# ---------------------------------------------------------------------------
# images: omni chat --image
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("how,says", [("missing", "image file not found"), ("empty", "cannot decode image file"),
                                      ("truncated", "cannot decode image file"), ("corrupt", "cannot decode image file")])
def test_broken_image(capsys, tmp_path, omni_export, how, says):
    from PIL import Image

    path = tmp_path / "picture.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    break_file(path, how, path.read_bytes())
    line = run_broken(capsys, tmp_path, "chat", "what is this?", "--image", path, "--ckpt", omni_export,
                      "--max-tokens", 2, "--device", "cpu")
    assert str(path) in line and says in line, line


def test_omni_debug_shows_the_traceback(monkeypatch, tmp_path):
    path = tmp_path / "preset.json"
    path.write_bytes(b"")
    monkeypatch.setenv("OMNI_DEBUG", "1")
    with pytest.raises(ValueError, match="empty file"):
        main(["train", "thinker", "--config", str(path), "--out", str(tmp_path / "run")])
