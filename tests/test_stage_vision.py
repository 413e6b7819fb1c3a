"""Stage 3 (vision): contrastive smoke run on a small world, strict export, retrieval evaluation, InfoNCE details."""

import math

import pytest
import torch
import torch.nn.functional as F

from omni.data.manifest import CaptionRecord
from omni.evaluation.vision import evaluate
from omni.models.contrastive import MAX_LOGIT_SCALE, ContrastiveConfig, ContrastiveModel
from omni.training import load_exported, read_metrics
from omni.training.contrastive import distinct_captions, info_nce
from stage_world import ROOT, run_stage, small_world

SMOKE = ROOT / "train/configs/vision/smoke.json"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    world = small_world(tmp_path_factory)
    out = tmp_path_factory.mktemp("vision") / "run"
    assert run_stage("vision", ["--config", str(SMOKE), "--data", str(world), "--out", str(out), "--device", "cpu"]) == 0
    return world, out


def test_smoke_infonce_falls(run):
    _, out = run
    recs = read_metrics(out / "metrics.jsonl")
    train = [r["loss"] for r in recs if r["kind"] == "train"]
    assert all(r["skipped"] is None for r in recs if r["kind"] == "train")
    assert sum(train[-5:]) / 5 < sum(train[:5]) / 5 - 0.15, (train[:5], train[-5:])
    evals = [r for r in recs if r["kind"] == "eval"]
    assert all(0 <= e["val_top1"] <= 1 and 0.01 <= e["temperature"] <= 1 for e in evals)


def test_export_loads_strictly_and_embeds(run):
    _, out = run
    model = load_exported(out / "export", ContrastiveModel, ContrastiveConfig).eval()
    assert (out / "export/tokenizer.model").is_file()
    size = model.cfg.vision.image_size
    img = model.image_embed(torch.randn(2, 3, size, size))
    txt = model.text_embed(torch.tensor([[1, 40, 41, 2], [1, 50, 2, 0]]))
    assert img.shape == txt.shape == (2, model.cfg.embed_dim)
    assert torch.allclose(img.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_evaluate_reports_retrieval_among_distinct_captions(run):
    world, out = run
    metrics = evaluate(out / "export", world, split="test")
    top1 = metrics[0]
    assert top1.name.startswith("image→caption top-1 among") and top1.unit == "%" and top1.goal == "≥ 90 %"
    assert 0 <= top1.value <= 100 and top1.met == (top1.value >= 90)
    k = int(top1.name.split("among ")[1].split()[0])
    assert metrics[2].name == "chance" and metrics[2].value == pytest.approx(100 / k)


def test_temperature_starts_at_0_07_and_is_clamped_like_clip():
    cfg = ContrastiveConfig()
    cfg.vision.n_layers = cfg.text.n_layers = 1
    model = ContrastiveModel(cfg)
    assert float(model.logit_scale.detach()) == pytest.approx(math.log(1 / 0.07))
    assert float(1 / model.scale().detach()) == pytest.approx(0.07)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert float(model.scale().detach()) == pytest.approx(100.0) and MAX_LOGIT_SCALE == pytest.approx(math.log(100))


def test_info_nce_is_clips_loss_and_shares_targets_between_equal_captions():
    torch.manual_seed(0)
    logits = torch.randn(4, 4)
    ar = torch.arange(4)
    assert torch.allclose(info_nce(logits), 0.5 * (F.cross_entropy(logits, ar) + F.cross_entropy(logits.T, ar)))
    # items 0 and 1 share a caption: their two columns are equally right for both rows, so the
    # shared target does not push the model to break the tie (equal gradients) but one-hot would
    tied = torch.tensor([[5.0, 5.0, 0, 0], [5.0, 5.0, 0, 0], [0, 0, 5.0, 0], [0, 0, 0, 5.0]], requires_grad=True)
    info_nce(tied, torch.tensor([0, 0, 1, 2])).backward()
    assert torch.allclose(tied.grad[0, 0], tied.grad[0, 1]) and torch.allclose(tied.grad[1, 0], tied.grad[1, 1])
    tied.grad = None
    info_nce(tied).backward()
    assert tied.grad[0, 0] < 0 < tied.grad[0, 1]


def test_distinct_captions_skips_repeats(tmp_path):
    recs = [CaptionRecord(f"i{k}", tmp_path / f"{k}.png", c) for k, c in enumerate(["a", "b", "a", "c", "b", "d"])]
    assert [r.id for r in distinct_captions(recs, 3)] == ["i0", "i1", "i3"]
    assert [r.caption for r in distinct_captions(recs, 100)] == ["a", "b", "c", "d"]
