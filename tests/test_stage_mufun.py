"""MuFun's training recipe on the tiny configuration: warm-up (connector only), then full fine-tuning."""

from pathlib import Path

import pytest
import torch

from omni.evaluation.mufun import evaluate
from omni.mufun.config import MuFunConfig, build_tiny_mufun_config
from omni.mufun.fusion import AUDIO_TOKEN_INDEX
from omni.mufun.model import MuFunModel
from omni.mufun.qa import MusicQADataset, QwenTokenizer, SharedBPE, collate_qa, prompt_ids
from omni.nn.cross_entropy import IGNORE_INDEX
from omni.tokenizer import BOS_ID, EOS_ID, BPETokenizer
from omni.training import TrainConfig, load_exported, load_preset, read_metrics
from omni.checkpoint import export_safetensors
from omni.stages import mufun as stage_module

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "train/configs/mufun/smoke.json"


def load_script():
    return stage_module


SCRIPT = load_script()


def smoke_preset():
    return load_preset(SMOKE, {"model": MuFunConfig, "data": SCRIPT.MuFunDataConfig, "train": TrainConfig,
                               "stages": SCRIPT.MuFunStagesConfig})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from omni.data.synth import build

    out = tmp_path_factory.mktemp("mufun_world")
    build(out, size="tiny", seed=0, progress=False)          # 10 sounds, ~40 training questions
    return out


@pytest.fixture(scope="module")
def tokenizer(world, tmp_path_factory):
    return BPETokenizer.train(world / "tokenizer_corpus.txt", tmp_path_factory.mktemp("tok") / "tokenizer.model",
                              vocab_size=smoke_preset()["model"].qwen3.vocab_size)


def state_of(export: Path) -> dict:
    return {k: v.clone() for k, v in load_exported(export, MuFunModel, MuFunConfig).state_dict().items()}


@pytest.fixture(scope="module")
def two_stages(world, tokenizer, tmp_path_factory):
    """A random tiny MuFun exported as the starting point, then warmup, then full from warmup's export."""
    tmp = tmp_path_factory.mktemp("mufun")
    cfg = smoke_preset()["model"]
    torch.manual_seed(3)
    start = export_safetensors(MuFunModel(cfg), cfg, tmp / "start")
    (start / "tokenizer.model").write_bytes(tokenizer.path.read_bytes())
    common = ["--config", str(SMOKE), "--data", str(world), "--device", "cpu"]
    assert SCRIPT.main(common + ["--stage", "warmup", "--init", str(start), "--out", str(tmp / "warmup")]) == 0
    warm = str(tmp / "warmup/export")
    assert SCRIPT.main(common + ["--stage", "full", "--init", warm, "--out", str(tmp / "full")]) == 0
    return tmp


def mean(xs):
    return sum(xs) / len(xs)


def test_smoke_preset_is_the_tiny_config():
    preset = smoke_preset()
    assert preset["model"] == build_tiny_mufun_config()
    warm = SCRIPT.override(preset["train"], **preset["stages"].warmup)
    assert warm.lr == 3e-3 and warm.max_steps == preset["train"].max_steps


def test_warmup_changes_only_the_connector_then_full_changes_everything(two_stages):
    start, warm, full = (state_of(two_stages / name / ("export" if name != "start" else ""))
                         for name in ("start", "warmup", "full"))
    for k in start:
        part = k.split(".")[0]
        if part == "connector":
            assert not torch.equal(start[k], warm[k]), f"warmup did not train {k}"
        else:
            assert torch.equal(start[k], warm[k]), f"warmup changed frozen {k}"
        if k == "whisper.embed_positions.weight":
            assert torch.equal(warm[k], full[k]), "Whisper's sinusoids must never train"
        else:
            assert not torch.equal(warm[k], full[k]), f"full fine-tuning did not train {k}"

    for stage in ("warmup", "full"):
        recs = read_metrics(two_stages / stage / "metrics.jsonl")
        losses = [r["loss"] for r in recs if r["kind"] == "train"]
        assert len(losses) == 10 and all(r["skipped"] is None for r in recs if r["kind"] == "train")
        assert mean(losses[-3:]) < mean(losses[:3]), f"{stage}: loss did not fall: {losses}"


def test_export_loads_strictly_and_evaluates(two_stages, world):
    export = two_stages / "full/export"
    model = load_exported(export, MuFunModel, MuFunConfig)
    assert model.cfg == build_tiny_mufun_config()
    metrics = evaluate(export, world, split="test", limit=2, max_new_tokens=3)
    assert len(metrics) == 1 and metrics[0].unit == "%" and 0 <= metrics[0].value <= 100 and metrics[0].met is None


def test_labels_mask_prompt_and_audio_and_all_masked_raises(world, tokenizer):
    from omni.data.manifest import read_manifest

    records = read_manifest(world / "audio_qa_train.jsonl", "audio_qa")[:2]
    tok = SharedBPE(tokenizer.path)
    batch = collate_qa([MusicQADataset(records, tok, 16)[i] for i in range(2)])
    for ids, labels, r in zip(batch["ids"], batch["labels"], records):
        assert ids[0] == BOS_ID and int((ids == AUDIO_TOKEN_INDEX).sum()) == 1
        assert labels[labels != IGNORE_INDEX].tolist() == tokenizer.encode(r.answer, add_bos=False) + [EOS_ID]
    torch.manual_seed(0)
    model = MuFunModel(build_tiny_mufun_config())
    _, loss = model(batch["ids"], batch["audios"], batch["labels"])
    assert torch.isfinite(loss)
    masked = [torch.full_like(lab, IGNORE_INDEX) for lab in batch["labels"]]
    with pytest.raises(ValueError, match="every label is -100"):
        model(batch["ids"], batch["audios"], masked)


def test_missing_weights_without_from_scratch_is_an_error(world, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing to start the whisper from: pass --whisper DIR"):
        SCRIPT.main(["--config", str(SMOKE), "--stage", "warmup", "--data", str(world), "--out", str(tmp_path / "r")])
    with pytest.raises(ValueError, match="--init provides all three parts"):
        SCRIPT.main(["--config", str(SMOKE), "--stage", "full", "--init", str(tmp_path), "--qwen", str(tmp_path)])


def test_a_qwen_tokenizer_json_is_read_without_bos(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<|endoftext|>": 0, "user:": 1, "is": 2, "it": 3, "loud?": 4, "assistant:": 5, "loud": 6, "[UNK]": 7}
    hf = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = QwenTokenizer(tmp_path)
    assert tok.eos_id == 0 and tok.bos_id is None
    assert prompt_ids("is it loud?", tok) == [1, AUDIO_TOKEN_INDEX, 2, 3, 4, 5]


def write_hf_folders(tmp: Path, cfg: MuFunConfig, seed: int = 4) -> tuple[Path, Path]:
    """Tiny Whisper and Qwen3 folders in the Hugging Face layout (config.json + model.safetensors)."""
    import json

    from safetensors.torch import save_file

    from omni.mufun.qwen3 import Qwen3LM
    from omni.mufun.whisper import HF_RENAMES, WhisperEncoder

    torch.manual_seed(seed)
    w, q = cfg.whisper, cfg.qwen3
    whisper = {}
    for k, v in WhisperEncoder(w).state_dict().items():
        for old, new in HF_RENAMES.items():
            k = k.replace(f".{new}", f".{old}")
        whisper["model.encoder." + k] = v.clone()
    qwen = {"model." + k: v.clone() for k, v in Qwen3LM(q).state_dict().items() if k != "lm_head.weight"}  # tied
    folders = []
    for name, config, state in (
            ("whisper", {"model_type": "whisper", "num_mel_bins": w.n_mels, "d_model": w.d_model,
                         "encoder_layers": w.n_layers, "encoder_attention_heads": w.n_heads,
                         "encoder_ffn_dim": w.ffn_dim, "max_source_positions": w.n_positions}, whisper),
            ("qwen", {"model_type": "qwen3", "vocab_size": q.vocab_size, "hidden_size": q.hidden_size,
                      "num_hidden_layers": q.n_layers, "num_attention_heads": q.n_heads,
                      "num_key_value_heads": q.n_kv_heads, "head_dim": q.head_dim,
                      "intermediate_size": q.intermediate_size, "rope_theta": q.rope_theta,
                      "rms_norm_eps": q.rms_norm_eps, "max_position_embeddings": q.max_position_embeddings,
                      "tie_word_embeddings": q.tie_word_embeddings}, qwen)):
        (tmp / name).mkdir()
        (tmp / name / "config.json").write_text(json.dumps(config))
        save_file(state, str(tmp / name / "model.safetensors"))
        folders.append(tmp / name)
    return folders[0], folders[1]


def test_real_checkpoint_folders_load_strictly(tmp_path):
    cfg = smoke_preset()["model"]
    wdir, qdir = write_hf_folders(tmp_path, cfg)
    args = SCRIPT.parse_args(["--config", str(SMOKE), "--stage", "warmup", "--whisper", str(wdir), "--qwen", str(qdir)])
    said = []
    model = SCRIPT.build_model(args, cfg, said.append)
    from safetensors.torch import load_file
    qwen = load_file(str(qdir / "model.safetensors"))
    assert torch.equal(model.llm.layers[1].mlp.up_proj.weight, qwen["model.layers.1.mlp.up_proj.weight"])
    assert model.whisper.conv1.weight.dtype == torch.float32
    assert any("connector new" in s for s in said)

    full = SCRIPT.parse_args(["--config", str(SMOKE), "--stage", "full", "--whisper", str(wdir), "--qwen", str(qdir)])
    with pytest.raises(FileNotFoundError, match="nothing to start the connector from"):
        SCRIPT.build_model(full, cfg, said.append)
    shallower = cfg.to_dict()
    shallower["whisper"]["n_layers"], shallower["feature_layers"] = 2, [0, 1, 2, 2]
    with pytest.raises(ValueError, match="the given whisper was built with"):   # preset ≠ checkpoint's config.json
        SCRIPT.build_model(args, MuFunConfig(**shallower), said.append)
