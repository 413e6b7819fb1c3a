"""Stage 1 on a synthetic world: corpus_train/corpus_val, the world's tokenizer, evaluation next to the floor."""

import json
import math
import shutil

import pytest
import torch

from omni.evaluation.thinker import evaluate
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.training import export_safetensors, load_exported, read_export_config, read_metrics
from stage_world import ROOT, run_stage, small_world

SMOKE = ROOT / "train/configs/thinker/smoke.json"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    world = small_world(tmp_path_factory)
    out = tmp_path_factory.mktemp("thinker-world") / "run"
    assert run_stage("thinker", ["--config", str(SMOKE), "--data", str(world), "--out", str(out),
                                 "--device", "cpu"]) == 0
    return world, out


def test_world_splits_and_world_tokenizer_are_used(run, capsys):
    world, out = run
    recs = read_metrics(out / "metrics.jsonl")
    train = [r["loss"] for r in recs if r["kind"] == "train"]
    evals = [r for r in recs if r["kind"] == "eval"]
    assert sum(train[-5:]) / 5 < 0.7 * sum(train[:5]) / 5, (train[:5], train[-5:])
    assert evals[-1]["val_bpc"] < evals[0]["val_bpc"]
    # validation is corpus_val.txt: its character count fixes the bits-per-char denominator
    val_lines = [ln for ln in (world / "corpus_val.txt").read_text().splitlines() if ln.strip()]
    tok_bytes = (out / "tokenizer.model").read_bytes()
    assert (out / "export/tokenizer.model").read_bytes() == tok_bytes
    from omni.tokenizer import BPETokenizer
    from omni.training.lm import bits_per_char, count_chars, encode_lines
    model = load_exported(out / "export", ThinkerLM, ThinkerConfig).eval()
    tok = BPETokenizer(out / "tokenizer.model")
    with torch.no_grad():
        again = bits_per_char(model, encode_lines(tok, val_lines), count_chars(val_lines), model.cfg.ctx_len, 32)
    assert math.isclose(again["val_bpc"], evals[-1]["val_bpc"], rel_tol=1e-4)


def test_tokenizer_comes_from_the_worlds_tokenizer_corpus(run, tmp_path):
    from omni.tokenizer import BPETokenizer
    world, out = run
    ref = BPETokenizer.train(world / "tokenizer_corpus.txt", tmp_path / "ref.model", vocab_size=320)
    tok = BPETokenizer(out / "tokenizer.model")
    text = "there are four purple cats in the old garden."
    assert tok.encode(text) == ref.encode(text)


def test_evaluate_reports_bits_per_char_next_to_the_floor(run, tmp_path):
    world, out = run
    metrics = {m.name: m for m in evaluate(out / "export", world, split="test")}
    card = json.loads((world / "card.json").read_text())["entropy"]
    assert metrics["entropy floor of the language (exact)"].value == pytest.approx(card["bits_per_char_exact"])
    held = metrics["entropy floor on these test sentences"].value
    assert held == pytest.approx(card["bits_per_char_held_out"]["test"])
    xent = next(m for name, m in metrics.items() if name.startswith("cross-entropy (test"))
    assert xent.unit == "bits/char" and xent.value > held          # a 40-step model is far from the floor
    excess = metrics["excess over the floor"]
    assert excess.value == pytest.approx(100 * (xent.value / held - 1))
    assert excess.goal == "≤ 15 %" and excess.met == (excess.value <= 15)
    assert xent.met == (xent.value <= 1.15 * held)
    # the learning signal: the same evaluation of an untrained model of the same shape scores far worse
    # (it spreads its probability over the whole vocabulary); 0.8 × leaves room for a slow but working run.
    untrained_dir = tmp_path / "untrained"
    torch.manual_seed(0)
    cfg = ThinkerConfig(**read_export_config(out / "export/config.json")[0])
    export_safetensors(ThinkerLM(cfg), cfg, untrained_dir)
    shutil.copyfile(out / "export/tokenizer.model", untrained_dir / "tokenizer.model")
    untrained = next(m for m in evaluate(untrained_dir, world, split="test") if m.name.startswith("cross-entropy"))
    assert xent.value <= 0.8 * untrained.value, (xent.value, untrained.value)
