"""`omni demo --smoke`: the main job end to end in seconds, and every artefact it promises."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    elsewhere = tmp_path_factory.mktemp("elsewhere")     # not the repository root: presets are found by name
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "omni", "demo", "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_summary_says_where_things_are(demo):
    out, stdout = demo
    assert f"report:      {out / 'report.md'}" in stdout
    assert "| stage" in stdout and "omni_sft" in stdout


@pytest.mark.parametrize("name", ["heard.wav", "sound.wav", "spoken.wav", "spoken_griffin_lim.wav"])
def test_wavs_are_16k_non_silent(demo, name):
    out, _ = demo
    wave, sr = sf.read(out / name)
    assert sr == 16_000 and wave.ndim == 1 and wave.size > 1600
    assert np.abs(wave).max() > 0.01


def test_spoken_wav_has_one_hop_per_frame(demo):
    out, _ = demo
    report = (out / "report.md").read_text()
    frames = int(re.search(r"- (\d+) frames \(", report).group(1))
    for name in ("spoken.wav", "spoken_griffin_lim.wav"):     # learned vocoder, Griffin-Lim: the same frames
        wave, _ = sf.read(out / name)
        assert wave.size == (frames + 1) * 1280          # the zero start frame is decoded too (seed Part 5)


@pytest.mark.parametrize("name", ["image.png", "heard_mel.png", "sound_mel.png", "spoken_mel.png",
                                  "loss_thinker.png", "loss_omni_sft.png"])
def test_pngs_decode_and_are_not_blank(demo, name):
    out, _ = demo
    img = np.asarray(Image.open(out / name).convert("RGB"))
    assert img.shape[0] >= 64 and img.shape[1] >= 64 and img.std() > 5


def test_report_links_resolve_and_sections_exist(demo):
    out, _ = demo
    report = (out / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert len(links) >= 15
    for link in links:
        assert (out / link).is_file(), f"report.md links to missing {link}"
    for title in ("Text chat", "Image question answering", "Speech recognition", "Audio question answering",
                  "Image + audio + text", "Text to speech", "MuFun"):
        assert f"## {title}" in report
    for stage in ("thinker", "audio", "vision", "codec", "vocoder", "talker", "omni_sft"):
        assert re.search(rf"^\| {stage} +\| ", report, re.M), f"no {stage} row in the evaluation table"
    assert "image-QA accuracy" in report and "TTS round-trip CER" in report
    for name in ("CER, original clips", "CER, learned vocoder of the true mel", "CER, Griffin-Lim of the true mel",
                 "CER, learned vocoder of codec(true mel)", "TTS round-trip CER, learned vocoder",
                 "TTS round-trip CER, Griffin-Lim"):                 # the decomposition, both vocoders
        assert re.search(rf"^\| talker +\| {re.escape(name)}", report, re.M), name


def test_metrics_json_holds_every_table_row(demo):
    out, _ = demo
    rows = json.loads((out / "metrics.json").read_text())
    assert {r["stage"] for r in rows} == {"thinker", "audio", "vision", "codec", "vocoder", "talker", "omni_sft"}
    assert all(set(r) == {"stage", "metric", "value", "unit", "goal", "met"} for r in rows)
    report = (out / "report.md").read_text()
    for r in rows:
        assert r["metric"].replace("|", "\\|") in report, f"metrics.json row {r['metric']!r} is not in report.md"
    sft = [r["metric"] for r in rows if r["stage"] == "omni_sft"]
    assert any("blind baseline" in m for m in sft) and any("answer-prior" in m for m in sft)
    assert any(m.lstrip().startswith("image-QA · ") for m in sft)


def test_traces_hold_the_documented_shapes(demo):
    out, _ = demo
    mufun = (out / "traces" / "mufun.md").read_text()
    assert "(1,800, 5,120)" in mufun and "(1, 1,807, 151,936)" in mufun
    tts = (out / "traces" / "tts.md").read_text()
    assert "tts.mel" in tts
