"""Stage omni_sft: the smoke preset on a small synthetic world; answer-only labels; strict warm start."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from omni.data.coverage import question_type
from omni.data.dialogue import build_parts
from omni.data.manifest import Message, read_manifest
from omni.evaluation.omni_sft import evaluate, normalize_answer
from omni.models.audio_encoder import AudioEncoderTiny
from omni.models.omni_model import IGNORE_INDEX, OmniConfig, OmniModel
from omni.models.thinker import ThinkerLM
from omni.tokenizer import BOS_ID, EOS_ID, BPETokenizer
from omni.training import TrainConfig, load_exported, load_preset, read_metrics
from omni.checkpoint import CheckpointError, export_safetensors
from omni.training.sft import AllMaskedError, DialogueDataset, answer_loss, fuse_batch, sft_loss
from omni.training.warm_start import PartSource, load_part
from omni.stages import omni_sft as stage_module

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "train/configs/omni_sft/smoke.json"


def load_script():
    return stage_module


SCRIPT = load_script()


def smoke_preset():
    return load_preset(SMOKE, {"model": OmniConfig, "data": SCRIPT.OmniSftDataConfig, "train": TrainConfig})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two threads on a shared two-core machine are several times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from stage_world import small_world      # one small world for every stage test (read only)

    return small_world(tmp_path_factory)


@pytest.fixture(scope="module")
def tokenizer(world, tmp_path_factory):
    return BPETokenizer.train(world / "tokenizer_corpus.txt", tmp_path_factory.mktemp("tok") / "tokenizer.model",
                              vocab_size=smoke_preset()["model"].thinker.vocab_size)


@pytest.fixture(scope="module")
def smoke_run(world, tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("omni_sft") / "run"
    rc = SCRIPT.main(["--config", str(SMOKE), "--data", str(world), "--out", str(out), "--device", "cpu",
                      "--tokenizer", str(tokenizer.path), "--from-scratch"])
    assert rc == 0
    return out


def test_smoke_loss_falls_and_export_loads_strictly(smoke_run, world):
    recs = read_metrics(smoke_run / "metrics.jsonl")
    train = [r["loss"] for r in recs if r["kind"] == "train"]
    evals = [r["val_loss"] for r in recs if r["kind"] == "eval"]
    assert len(train) == smoke_preset()["train"].max_steps
    assert all(r["skipped"] is None for r in recs if r["kind"] == "train")
    assert sum(train[-5:]) / 5 < 0.75 * sum(train[:3]) / 3, f"training loss did not fall: {train}"
    assert evals[-1] < evals[0], f"validation loss did not fall: {evals}"

    model = load_exported(smoke_run / "export", OmniModel, OmniConfig)
    assert model.cfg == smoke_preset()["model"]
    assert (smoke_run / "export/tokenizer.model").read_bytes() == (smoke_run / "tokenizer.model").read_bytes()
    state = torch.load(smoke_run / "checkpoints/best.pt", weights_only=False)["model"]   # train.export: best
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k

    metrics = evaluate(smoke_run / "export", world, split="test", limit=12, max_new_tokens=4, asr_clips=2)
    names = [m.name for m in metrics]
    by_name = {m.name.split(" (")[0].split(" [")[0].strip(): m for m in metrics}
    assert by_name["image-QA accuracy"].goal == "≥ 97 %"
    assert by_name["image-QA accuracy"].met == (by_name["image-QA accuracy"].value >= 97)
    assert by_name["audio-QA accuracy"].goal == "≥ 90 %"
    for kind in ("image", "audio"):
        assert f"{kind}-QA blind baseline" in by_name and f"{kind}-QA answer-prior baseline" in by_name
        margin = by_name[f"{kind}-QA blind − answer prior"]
        assert margin.value == pytest.approx(by_name[f"{kind}-QA blind baseline"].value
                                             - by_name[f"{kind}-QA answer-prior baseline"].value)
    # one row per question type asked among the first 12 image questions, each with its own goal
    asked = {question_type(r.question) for r in read_manifest(world / "image_qa_test.jsonl", "image_qa")[:12]}
    type_rows = [m for m in metrics if m.name.lstrip().startswith("image-QA · ")]
    assert sorted(m.name.split("· ")[1].split(" [")[0] for m in type_rows) == sorted(asked)
    assert all(m.goal == "≥ 90 %" for m in type_rows)
    assert sum(int(m.name.split("[")[1].split("]")[0]) for m in type_rows) == 12
    assert any(n.startswith("ASR through the omni model") for n in names)
    assert all(0 <= m.value <= 100 for m in metrics if m.unit == "%" and "CER" not in m.name)


def test_missing_export_without_from_scratch_is_an_error(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                        # no checkpoints/<stage>/export here
    with pytest.raises(FileNotFoundError, match=r"no thinker export at checkpoints/thinker/export.*--from-scratch"):
        SCRIPT.main(["--config", str(SMOKE), "--data", str(world), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_labels_cover_only_the_last_answer_and_all_masked_raises(world, tokenizer):
    cfg = smoke_preset()["model"]
    torch.manual_seed(0)
    model = OmniModel(cfg)
    records = read_manifest(world / "sft_train.jsonl", "sft")
    two_turns = next(r for r in records if len(r.messages) == 4 and r.audios and not r.images)
    one_image = next(r for r in records if len(r.messages) == 2 and r.images)
    ds = DialogueDataset([two_turns, one_image], tokenizer, cfg.vision.image_size)
    batch = [ds[0], ds[1]]
    embeds, labels, lengths = fuse_batch(model, batch)
    assert embeds.shape == (2, int(lengths.max()), cfg.thinker.d_model)
    for b, (ex, rec) in enumerate(zip(batch, [two_turns, one_image])):
        learned = labels[b][labels[b] != IGNORE_INDEX].tolist()
        assert learned == tokenizer.encode(rec.messages[-1].content, add_bos=False) + [EOS_ID]
        assert (labels[b, lengths[b]:] == IGNORE_INDEX).all()          # padding masked
        assert ex.parts[0][1][0] == BOS_ID
    loss, counts = sft_loss(model, batch)
    assert torch.isfinite(loss) and counts["samples"] == 2 and counts["tokens"] == int((labels != IGNORE_INDEX).sum())

    masked = [dataclasses.replace(ex, prompt_tokens=ex.text_tokens) for ex in batch]    # nothing left to learn
    with pytest.raises(AllMaskedError, match="every label of this batch of 2 rows is -100"):
        sft_loss(model, masked)


def test_generation_prompt_ends_with_the_assistant_cue(tokenizer):
    parts, prompt_tokens, answer, spans = build_parts([Message("user", "<audio>\nis it loud or quiet?")],
                                                      tokenizer, mels=[torch.zeros(100, 128)])
    assert spans == []
    assert [k for k, _ in parts] == ["text", "audio", "text"] and answer is None
    assert prompt_tokens == parts[0][1].numel() + parts[2][1].numel()
    assert tokenizer.decode(parts[2][1].tolist()) == "is it loud or quiet? assistant:"
    assert normalize_answer(" Square-Tone. ") == "square tone"
    with pytest.raises(ValueError, match="1 <image> and 0 <audio> markers, but 0 images and 1 audio clips"):
        build_parts([Message("user", "<image>\nwhat?")], tokenizer, mels=[torch.zeros(100, 128)])


def fake_asr_export(folder: Path, encoder: AudioEncoderTiny, extra: dict | None = None, drop: str | None = None):
    """What the audio stage exports: config.json {"encoder": ..., "vocab_size": 98} and encoder.* + ctc_head.*."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {f"encoder.{k}": v.clone() for k, v in encoder.state_dict().items()}
    state["ctc_head.weight"] = torch.zeros(98, encoder.cfg.d_model)
    state.update(extra or {})
    state.pop(drop, None)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"encoder": dataclasses.asdict(encoder.cfg), "vocab_size": 98}))
    return folder


def test_warm_start_is_strict(tmp_path):
    cfg = smoke_preset()["model"]
    torch.manual_seed(1)
    trained = AudioEncoderTiny(cfg.audio)
    source = SCRIPT.SOURCES["audio_encoder"]
    fresh = OmniModel(cfg)
    load_part(fresh.audio_encoder, fake_asr_export(tmp_path / "ok", trained), source, cfg.audio)
    for k, v in trained.state_dict().items():
        assert torch.equal(fresh.audio_encoder.state_dict()[k], v), k

    with pytest.raises(CheckpointError, match=r"missing keys \['proj.bias'\]"):
        load_part(fresh.audio_encoder, fake_asr_export(tmp_path / "miss", trained, drop="encoder.proj.bias"),
                  source, cfg.audio)
    with pytest.raises(CheckpointError, match=r"unexpected keys \['extra'\]"):
        load_part(fresh.audio_encoder, fake_asr_export(tmp_path / "extra", trained,
                                                       extra={"encoder.extra": torch.zeros(1)}), source, cfg.audio)
    other = dataclasses.replace(cfg.audio, d_model=48)
    with pytest.raises(CheckpointError, match=r"d_model: export 48 vs model 64"):
        load_part(fresh.audio_encoder, fake_asr_export(tmp_path / "cfg", AudioEncoderTiny(other)), source, cfg.audio)
    with pytest.raises(CheckpointError, match=r"no 'vision' section"):
        load_part(fresh.vision, tmp_path / "ok", SCRIPT.SOURCES["vision"], cfg.vision)


def test_thinker_export_starts_the_thinker_and_brings_its_tokenizer(world, tokenizer, tmp_path):
    cfg = smoke_preset()["model"]
    short = dataclasses.replace(cfg.thinker, ctx_len=64)           # ctx_len shapes no weight: allowed, announced
    torch.manual_seed(2)
    thinker = ThinkerLM(short)
    export = export_safetensors(thinker, short, tmp_path / "thinker")
    (export / "tokenizer.model").write_bytes(tokenizer.path.read_bytes())
    audio = fake_asr_export(tmp_path / "audio", AudioEncoderTiny(cfg.audio))
    rc = SCRIPT.main(["--config", str(SMOKE), "--data", str(world), "--out", str(tmp_path / "run"), "--device", "cpu",
                      "--thinker", str(export), "--audio", str(audio), "--from-scratch", "--max-steps", "1",
                      "--freeze", "audio_encoder"])
    assert rc == 0
    tuned = load_exported(tmp_path / "run/export", OmniModel, OmniConfig)
    got = torch.load(tmp_path / "run/checkpoints/latest.pt", weights_only=False)["model"]
    from safetensors.torch import load_file
    asr = load_file(str(audio / "model.safetensors"))
    for k, v in tuned.audio_encoder.state_dict().items():          # frozen: still the export's weights
        assert torch.equal(v, asr[f"encoder.{k}"]), k
    delta = (got["thinker.tok_emb.weight"] - thinker.tok_emb.weight).abs().max()
    assert 0 < delta < 0.05                                        # one small step away from the export
    with pytest.raises(ValueError, match="differs from the thinker export"):
        other = tmp_path / "other.model"
        BPETokenizer.train(world / "corpus_train.txt", other, vocab_size=300)
        SCRIPT.main(["--config", str(SMOKE), "--data", str(world), "--out", str(tmp_path / "run2"),
                     "--thinker", str(export), "--tokenizer", str(other), "--from-scratch"])


def test_answer_logits_equal_the_full_heads_at_the_answer_positions(world, tokenizer):
    """sft_loss runs the 5000-way head only where an answer token is predicted: same loss as the full logits."""
    cfg = smoke_preset()["model"]
    torch.manual_seed(0)
    model = OmniModel(cfg)
    records = read_manifest(world / "sft_train.jsonl", "sft")[:6]
    batch = [DialogueDataset(records, tokenizer, cfg.vision.image_size)[i] for i in range(6)]
    loss, counts = sft_loss(model, batch)
    embeds, labels, _ = fuse_batch(model, batch)
    full = answer_loss(model.thinker(embeds=embeds), labels)
    torch.testing.assert_close(loss, full, atol=1e-5, rtol=1e-5)
    assert counts["tokens"] == int((labels[:, 1:] != IGNORE_INDEX).sum())
    loss.backward()
    assert model.vision.proj.weight.grad is not None and model.proj_v.weight.grad.abs().sum() > 0


def test_dialogue_weighting_averages_each_dialogue_first(world, tokenizer):
    cfg = smoke_preset()["model"]
    torch.manual_seed(0)
    model = OmniModel(cfg)
    records = read_manifest(world / "sft_train.jsonl", "sft")
    short = next(r for r in records if len(r.messages) == 2 and r.messages[1].content in ("yes", "no", "red"))
    long = next(r for r in records if len(r.messages) == 2 and len(r.messages[1].content.split()) >= 6)
    batch = [DialogueDataset([short, long], tokenizer, cfg.vision.image_size)[i] for i in range(2)]
    per_row = [sft_loss(model, [ex])[0] for ex in batch]
    dialogue, _ = sft_loss(model, batch, weighting="dialogue")
    token, counts = sft_loss(model, batch, weighting="token")
    torch.testing.assert_close(dialogue, (per_row[0] + per_row[1]) / 2, atol=1e-5, rtol=1e-5)
    n = [sft_loss(model, [ex])[1]["tokens"] for ex in batch]
    torch.testing.assert_close(token, (per_row[0] * n[0] + per_row[1] * n[1]) / sum(n), atol=1e-5, rtol=1e-5)
    assert n[1] > n[0]
    with pytest.raises(ValueError, match="loss weighting must be one of"):
        sft_loss(model, batch, weighting="answer")
