"""``omni eval``: the metric table, and how the command finds stages, checkpoints and evaluation modules.

The stages' own evaluations (omni/evaluation/<stage>.py) are tested by their
authors. Here a test-only stage, ``probe``, is put in the registry
(:data:`omni.stages.STAGES`) for the duration of a test, with ``absent``, a
stage that never has a checkpoint; probe's export is a tiny randomly
initialised ThinkerLM (plumbing, not quality). Its metrics are computed from the checkpoint and the data folder, so
the table must carry values that come from them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from omni.cli import main
from omni.evaluation import Metric, format_table, metrics_to_json
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.stages import STAGES
from omni.exports import EXPORTS, load_stage
from omni.tokenizer import BPETokenizer
from omni.training import export_safetensors

def probe_evaluate(ckpt: Path, data: Path, split: str = "test", device: str = "cpu", **kw):
    """Test-only evaluation: facts about the checkpoint and the data, as Metrics."""
    print("probe: counting")                      # progress: must go to stderr, not into the table
    loaded = load_stage("probe", ckpt, device)
    n_params = sum(p.numel() for p in loaded.model.parameters())
    lines = (Path(data) / f"text_{split}.txt").read_text().splitlines()
    return [Metric("parameters", n_params),
            Metric(f"{split} lines", len(lines), unit="lines", goal="≥ 2", met=len(lines) >= 2)]


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------
def test_table_rows_alignment_and_met_cells():
    ms = [Metric("CER (held-out voice)", 7.3123, "%", "≤ 10 %", True),
          Metric("codebook usage", 118),
          Metric("loss | total", 123456.7, goal="< 1", met=False)]
    lines = format_table(ms).splitlines()
    assert lines[0].split("|")[1:-1] == [" metric               ", "   value ", " goal   ", " met "]
    assert lines[1] == "|----------------------|--------:|--------|-----|"
    assert lines[2] == "| CER (held-out voice) | 7.312 % | ≤ 10 % | yes |"
    assert lines[3] == "| codebook usage       |     118 |        | —   |"
    assert lines[4] == "| loss \\| total        | 123,457 | < 1    | no  |"      # a pipe in a name is escaped
    assert len({len(line) for line in lines}) == 1                                  # columns line up


def test_table_by_stage_and_json():
    results = {"audio": [Metric("CER", 4.0, "%", "≤ 10 %", True)], "codec": [Metric("SNR", 12.5, "dB")]}
    lines = format_table(results).splitlines()
    assert lines[0].startswith("| stage | metric |")
    assert lines[2].startswith("| audio | CER ") and lines[3].startswith("| codec | SNR ")
    rows = json.loads(metrics_to_json(results))
    assert rows == [{"stage": "audio", "metric": "CER", "value": 4.0, "unit": "%", "goal": "≤ 10 %", "met": True},
                    {"stage": "codec", "metric": "SNR", "value": 12.5, "unit": "dB", "goal": "", "met": None}]
    with pytest.raises(TypeError, match="stage codec.*got dict"):
        format_table({"codec": [{"name": "SNR"}]})


# ---------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------
@pytest.fixture
def probe(tmp_path, monkeypatch):
    """Replace the registry by three stages: thinker, ``probe`` (a ThinkerLM export) and ``absent``."""
    for name in ("probe", "absent"):                # their exports hold what the thinker's does
        monkeypatch.setitem(EXPORTS, name, EXPORTS["thinker"])
    real = dict(STAGES)
    STAGES.clear()                                 # every consumer reads this one dict
    STAGES.update({"thinker": real["thinker"],
                   "probe": dataclasses.replace(real["thinker"], name="probe", evaluate=probe_evaluate),
                   "absent": dataclasses.replace(real["thinker"], name="absent", evaluate=probe_evaluate)})

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the red cat sits.\na dog runs.\nwhat colour is the sky?\n" * 10)
    tok = BPETokenizer.train(corpus, tmp_path / "tok.model", vocab_size=320)
    cfg = ThinkerConfig(vocab_size=320, ctx_len=16, d_model=16, n_layers=1, n_heads=2, ffn_hidden=32)
    torch.manual_seed(0)
    model = ThinkerLM(cfg)
    root = tmp_path / "checkpoints"
    export = export_safetensors(model, cfg, root / "probe" / "export")
    shutil.copyfile(tok.path, export / "tokenizer.model")
    data = tmp_path / "world"
    data.mkdir()
    (data / "text_test.txt").write_text("one\ntwo\nthree\n")
    assert sum(p.numel() for p in model.parameters()) < 10_000     # printed with 4 digits, no separator
    try:
        yield {"root": root, "export": export, "data": data, "n_params": sum(p.numel() for p in model.parameters())}
    finally:
        STAGES.clear()
        STAGES.update(real)


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def table_rows(out: str) -> list[list[str]]:
    """The body rows of the Markdown table in ``out``, cells stripped."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("|")]
    return rows[2:]


def test_eval_prints_the_stage_table(capsys, probe):
    rc, out, err = run(capsys, "eval", "probe", "--ckpt", probe["export"], "--data", probe["data"], "--device", "cpu")
    assert rc == 0, err
    assert table_rows(out) == [["parameters", f"{probe['n_params']:.4g}", "", "—"],
                               ["test lines", "3 lines", "≥ 2", "yes"]]
    rc, out, err = run(capsys, "eval", "probe", "--checkpoints", probe["root"], "--data", probe["data"], "--json",
                     "--device", "cpu")
    assert rc == 0
    rows = json.loads(out)                                  # stdout is pure JSON
    assert "probe: counting" in err and "probe: counting" not in out
    assert rows[0] == {"metric": "parameters", "value": probe["n_params"], "unit": "", "goal": "", "met": None}
    assert rows[1]["value"] == 3 and rows[1]["met"] is True


def test_eval_missing_checkpoint_names_folder_and_files(capsys, probe, tmp_path):
    rc, out, err = run(capsys, "eval", "probe", "--ckpt", tmp_path / "nothing", "--data", probe["data"])
    assert rc == 1 and out == ""
    assert f"no probe checkpoint: {tmp_path / 'nothing'} does not exist" in err
    assert "config.json, model.safetensors, tokenizer.model" in err and "omni train probe" in err
    (probe["export"] / "model.safetensors").unlink()
    rc, _, err = run(capsys, "eval", "probe", "--ckpt", probe["export"], "--data", probe["data"])
    assert rc == 1 and "is incomplete: missing model.safetensors" in err


def test_eval_missing_data_folder_says_how_to_build_it(capsys, probe, tmp_path):
    rc, _, err = run(capsys, "eval", "probe", "--ckpt", probe["export"], "--data", tmp_path / "noworld")
    assert rc == 1 and f"omni data synth --out {tmp_path / 'noworld'}" in err


def test_eval_all_evaluates_what_exists_and_names_what_it_skips(capsys, probe):
    (probe["root"] / "thinker" / "export").mkdir(parents=True)          # present but empty
    rc, out, err = run(capsys, "eval", "all", "--checkpoints", probe["root"], "--data", probe["data"],
                       "--device", "cpu")
    assert rc == 0, err
    assert table_rows(out) == [["probe", "parameters", f"{probe['n_params']:.4g}", "", "—"],
                               ["probe", "test lines", "3 lines", "≥ 2", "yes"]]
    thinker = probe["root"] / "thinker" / "export"
    assert (f"skipped thinker: no checkpoint ({thinker} lacks config.json, model.safetensors, tokenizer.model)"
            in out)
    assert f"skipped absent: no checkpoint ({probe['root'] / 'absent' / 'export'} does not exist)" in out
    rc, out, err = run(capsys, "eval", "all", "--checkpoints", probe["root"], "--data", probe["data"], "--json",
                       "--device", "cpu")
    assert rc == 0 and {r["stage"] for r in json.loads(out)} == {"probe"} and "skipped thinker" in err


def test_eval_all_without_any_checkpoint_is_an_error(capsys, probe, tmp_path):
    rc, out, err = run(capsys, "eval", "all", "--checkpoints", tmp_path / "empty", "--data", probe["data"])
    assert rc == 1 and out == ""
    assert "no stage has a checkpoint" in err and "thinker, probe, absent" in err


def test_max_items_goes_to_the_talker_and_vocoder_evaluations_only():
    import argparse

    from omni.commands.eval import stage_options

    args = argparse.Namespace(stage="talker", decode=None, max_items=60)
    assert stage_options("talker", args) == {"max_items": 60}
    assert stage_options("vocoder", argparse.Namespace(stage="vocoder", decode=None, max_items=5)) == {"max_items": 5}
    with pytest.raises(ValueError, match="--max-items limits the sentences of talker, vocoder"):
        stage_options("codec", argparse.Namespace(stage="codec", decode=None, max_items=5))
    assert stage_options("codec", argparse.Namespace(stage="all", decode=None, max_items=5)) == {}
    assert stage_options("audio", argparse.Namespace(stage="audio", decode="beam", max_items=None)) == {"decode": "beam"}


def test_asr_and_vocoder_exports_go_to_the_evaluations_that_take_them():
    import argparse

    from omni.commands.eval import stage_options

    def args(stage, **kw):
        return argparse.Namespace(stage=stage, decode=None, max_items=None, **{"asr": None, "vocoder": None, "codec": None, **kw})

    assert stage_options("codec", args("codec", asr="a", vocoder="v")) == {"asr": "a", "vocoder": "v"}
    assert stage_options("vocoder", args("vocoder", asr="a")) == {"asr": "a"}
    with pytest.raises(ValueError, match="--vocoder is an export for the evaluations of codec, talker"):
        stage_options("vocoder", args("vocoder", vocoder="v"))
    with pytest.raises(ValueError, match="--asr is an export for the evaluations of codec, talker, vocoder"):
        stage_options("audio", args("audio", asr="a"))
    assert stage_options("talker", args("talker", codec="c")) == {"codec": "c"}
    assert stage_options("audio", args("all", asr="a")) == {}
