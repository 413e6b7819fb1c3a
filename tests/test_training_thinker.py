"""Stage 1 smoke run: train/thinker.py on a small generated corpus; loss falls; checkpoint and export load strictly."""

import random
from pathlib import Path

import pytest
import torch

from omni import cli
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.tokenizer import BPETokenizer
from omni.training import load_exported, read_checkpoint, read_metrics
from omni.checkpoint import load_model_state
from omni.stages import thinker as stage_module
from training_toy import one_thread  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "train/configs/thinker/smoke.json"


def write_corpus(path: Path, n: int = 600) -> Path:
    r = random.Random(0)
    subj = ["the cat", "a dog", "the red bird", "my friend", "the old man", "a small child", "the teacher"]
    verb = ["sees", "likes", "finds", "follows", "paints", "carries"]
    obj = ["a ball", "the green box", "two apples", "the blue car", "a long song", "the river"]
    place = ["in the park", "at home", "near the lake", "on the hill", "by the door"]
    path.write_text("".join(f"{r.choice(subj)} {r.choice(verb)} {r.choice(obj)} {r.choice(place)}.\n"
                            for _ in range(n)))
    return path


def load_script():
    return stage_module


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("thinker")
    corpus = write_corpus(tmp / "corpus.txt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = load_script().main(["--config", str(SMOKE), "--data", str(corpus), "--out", str(tmp / "run"),
                                 "--device", "cpu"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    return tmp


def test_smoke_loss_and_bits_per_char_fall(smoke_run):
    recs = read_metrics(smoke_run / "run/metrics.jsonl")
    train = [r["loss"] for r in recs if r["kind"] == "train"]
    evals = [r for r in recs if r["kind"] == "eval"]
    assert len(train) == 40 and all(r["skipped"] is None for r in recs if r["kind"] == "train")
    assert sum(train[-5:]) / 5 < 0.6 * sum(train[:5]) / 5, (train[:5], train[-5:])
    assert [e["step"] for e in evals] == [20, 40]
    assert evals[1]["val_bpc"] < evals[0]["val_bpc"]
    assert all(r["tokens_per_s"] > 0 for r in recs if r["kind"] == "train")
    assert (smoke_run / "run/loss.png").stat().st_size > 1000


def test_smoke_checkpoint_and_export_load_strictly(smoke_run):
    run = smoke_run / "run"
    ck = read_checkpoint(run / "checkpoints/latest.pt")
    model = ThinkerLM(ThinkerConfig(**ck["model_config"]))
    load_model_state(model, ck["model"], "latest.pt")
    exported = load_exported(run / "export", ThinkerLM, ThinkerConfig)
    for (name, p), q in zip(model.state_dict().items(), exported.state_dict().values()):
        assert torch.equal(p, q), name
    tok = BPETokenizer(run / "export/tokenizer.model")
    ids = torch.tensor([tok.encode("the cat sees a ball")])
    assert exported(ids).shape == (1, ids.shape[1], ck["model_config"]["vocab_size"])
    assert read_checkpoint(run / "checkpoints/best.pt")["best"]["metric"] == "val_bpc"


def test_omni_train_cli_resumes_the_run(smoke_run, one_thread, capsys):
    run = smoke_run / "run"
    rc = cli.main(["train", "thinker", "--config", str(SMOKE), "--data", str(smoke_run / "corpus.txt"),
                   "--out", str(run), "--device", "cpu", "--max-steps", "43"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "[resume]" in out and "step 40" in out and "max_steps: 40 → 43" in out
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == list(range(1, 44))


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus not found: .*nope.txt"):
        load_script().main(["--config", str(SMOKE), "--data", str(tmp_path / "nope.txt"),
                            "--out", str(tmp_path / "run"), "--device", "cpu"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_smoke_on_gpu_with_autocast(tmp_path, precision):
    corpus = write_corpus(tmp_path / "corpus.txt")
    rc = load_script().main(["--config", str(SMOKE), "--data", str(corpus), "--out", str(tmp_path / "run"),
                             "--device", "cuda", "--precision", precision])
    assert rc == 0
    recs = [r for r in read_metrics(tmp_path / "run/metrics.jsonl") if r["kind"] == "train"]
    assert ("loss_scale" in recs[0]) == (precision == "fp16" or not torch.cuda.is_bf16_supported())
    applied = [r["loss"] for r in recs if r["skipped"] is None]
    assert len(applied) >= 30 and sum(applied[-5:]) < 0.6 * sum(applied[:5])
