"""Checkpoint loading is strict: every missing, unexpected or mis-shaped key is named."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from omni.mufun.blp import BLPConnector
from omni.mufun.config import ConnectorConfig, Qwen3Config, build_tiny_mufun_config
from omni.mufun.loading import (CheckpointError, load_connector, load_mufun, load_qwen3, load_tokenizer,
                                load_whisper, qwen3_config_from_hf, read_safetensors_folder, save_connector)

QWEN3_CONFIG = {"model_type": "qwen3", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
                "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "intermediate_size": 32,
                "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 64,
                "tie_word_embeddings": False, "hidden_act": "silu", "attention_bias": False}
WHISPER_CONFIG = {"model_type": "whisper", "num_mel_bins": 8, "d_model": 16, "encoder_layers": 2,
                  "encoder_attention_heads": 2, "encoder_ffn_dim": 32, "max_source_positions": 10,
                  "activation_function": "gelu", "scale_embedding": False}


def _qwen3_state() -> dict[str, torch.Tensor]:
    """A complete HF-layout Qwen3 state dict for QWEN3_CONFIG, written from our own module's keys."""
    from omni.mufun.qwen3 import Qwen3LM

    model = Qwen3LM(qwen3_config_from_hf(QWEN3_CONFIG))
    return {("lm_head.weight" if k == "lm_head.weight" else "model." + k): v.clone()
            for k, v in model.state_dict().items()}


def _write_folder(folder, config: dict, state: dict, shards: int = 1):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    if shards == 1:
        save_file(state, str(folder / "model.safetensors"))
        return folder
    keys = sorted(state)
    weight_map = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in keys[s::shards]}
        save_file(part, str(folder / name))
        weight_map.update({k: name for k in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def test_qwen3_loads_from_sharded_folder(tmp_path):
    state = _qwen3_state()
    folder = _write_folder(tmp_path / "q", QWEN3_CONFIG, state, shards=3)
    assert set(read_safetensors_folder(folder)) == set(state)
    model = load_qwen3(folder)
    assert torch.equal(model.layers[1].self_attn.k_norm.weight, state["model.layers.1.self_attn.k_norm.weight"])
    assert model.rope.inv_freq.device.type == "cpu"           # non-persistent buffer rebuilt after meta loading
    logits = model(ids=torch.tensor([[1, 2, 3]]))
    assert logits.shape == (1, 3, 50) and torch.isfinite(logits).all()


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path):
    state = _qwen3_state()
    del state["model.layers.0.mlp.up_proj.weight"]
    state["model.layers.0.mlp.extra.weight"] = torch.zeros(3)
    state["model.norm.weight"] = torch.zeros(17)
    folder = _write_folder(tmp_path / "bad", QWEN3_CONFIG, state)
    with pytest.raises(CheckpointError) as e:
        load_qwen3(folder)
    msg = str(e.value)
    assert "missing keys ['layers.0.mlp.up_proj.weight']" in msg
    assert "unexpected keys ['layers.0.mlp.extra.weight']" in msg
    assert "norm.weight: checkpoint (17,) vs model (16,)" in msg
    assert str(folder) in msg


def test_each_problem_alone_is_an_error(tmp_path):
    for i, edit in enumerate(["missing", "unexpected", "misshaped"]):
        state = _qwen3_state()
        if edit == "missing":
            del state["lm_head.weight"]              # untied: lm_head is required
        elif edit == "unexpected":
            state["model.layers.2.input_layernorm.weight"] = torch.ones(16)
        else:
            state["model.embed_tokens.weight"] = torch.zeros(51, 16)
        with pytest.raises(CheckpointError, match={"missing": "missing keys \\['lm_head.weight'\\]",
                                                   "unexpected": "unexpected keys \\['layers.2",
                                                   "misshaped": "embed_tokens.weight: checkpoint \\(51, 16\\)"}[edit]):
            load_qwen3(_write_folder(tmp_path / f"q{i}", QWEN3_CONFIG, state))


def test_config_settings_we_do_not_implement_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="attention_bias=True"):
        qwen3_config_from_hf(QWEN3_CONFIG | {"attention_bias": True})
    with pytest.raises(CheckpointError, match="rope_scaling"):
        qwen3_config_from_hf(QWEN3_CONFIG | {"rope_scaling": {"type": "yarn", "factor": 4.0}})
    with pytest.raises(CheckpointError, match="no 'head_dim'"):
        qwen3_config_from_hf({k: v for k, v in QWEN3_CONFIG.items() if k != "head_dim"})
    with pytest.raises(CheckpointError, match="expected 'qwen3'"):
        qwen3_config_from_hf(QWEN3_CONFIG | {"model_type": "qwen2"})
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "config.json").write_text(json.dumps(QWEN3_CONFIG))
        load_qwen3(tmp_path / "empty")


def test_whisper_keys_outside_the_encoder_are_ignored_but_encoder_keys_are_strict(tmp_path):
    from omni.mufun.loading import whisper_config_from_hf
    from omni.mufun.whisper import HF_RENAMES, WhisperEncoder

    ours = WhisperEncoder(whisper_config_from_hf(WHISPER_CONFIG))
    hf = {}
    for k, v in ours.state_dict().items():      # our names back to HF's (inverse rename table)
        for old, new in HF_RENAMES.items():
            k = k.replace(f".{new}", f".{old}")
        hf["model.encoder." + k] = v.clone()
    hf["model.decoder.embed_tokens.weight"] = torch.zeros(4, 16)      # the decoder MuFun does not use
    loaded = load_whisper(_write_folder(tmp_path / "w", WHISPER_CONFIG, hf))
    assert torch.equal(loaded.layers[1].mlp.fc2.weight, ours.layers[1].mlp.fc2.weight)
    assert not loaded.embed_positions.weight.requires_grad

    hf["model.encoder.layers.0.self_attn.k_proj.bias"] = torch.zeros(16)   # Whisper's k_proj has no bias
    with pytest.raises(CheckpointError, match=r"unexpected keys \['layers.0.self_attn.k_proj.bias'\]"):
        load_whisper(_write_folder(tmp_path / "w2", WHISPER_CONFIG, hf))


def test_connector_roundtrip_and_mufun_prefix(tmp_path):
    cfg = ConnectorConfig(audio_dim=8, llm_dim=12)
    conn = BLPConnector(cfg)
    path = save_connector(conn, tmp_path / "connector.safetensors")
    assert torch.equal(load_connector(path, cfg).linear2.weight, conn.linear2.weight)

    prefixed = {"connector._connector." + k: v for k, v in load_file(str(path)).items()}
    save_file(prefixed, str(tmp_path / "mufun_connector.safetensors"))
    assert torch.equal(load_connector(tmp_path / "mufun_connector.safetensors", cfg).linear1.bias, conn.linear1.bias)

    with pytest.raises(CheckpointError, match="linear2.weight: checkpoint"):
        load_connector(path, ConnectorConfig(audio_dim=8, llm_dim=16))


def test_load_mufun_assembles_the_three_parts(tmp_path):
    from omni.mufun.loading import whisper_config_from_hf
    from omni.mufun.whisper import HF_RENAMES, WhisperEncoder

    wcfg = whisper_config_from_hf(WHISPER_CONFIG | {"max_source_positions": 1500})
    hf = {}
    for k, v in WhisperEncoder(wcfg).state_dict().items():
        for old, new in HF_RENAMES.items():
            k = k.replace(f".{new}", f".{old}")
        hf[k] = v                                             # bare encoder layout
    wdir = _write_folder(tmp_path / "w", WHISPER_CONFIG | {"max_source_positions": 1500}, hf)
    qdir = _write_folder(tmp_path / "q", QWEN3_CONFIG, _qwen3_state())
    conn = save_connector(BLPConnector(ConnectorConfig(audio_dim=16, llm_dim=16)), tmp_path / "c.safetensors")
    model = load_mufun(wdir, qdir, conn, max_seq_len=64, feature_layers=(0, 1, 2, 2), pool_stride=25)
    assert model.cfg.tokens_per_chunk == 60 and model.llm.cache_spec()[3] == 64
    mels = torch.zeros(1, 8, 3000)
    assert model.embed_audio(mels).shape == (60, 16)


def test_tokenizer_from_local_folder(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "listen": 1, "to": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    assert load_tokenizer(tmp_path).encode("listen to").ids == [1, 2]
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        load_tokenizer(tmp_path / "nowhere")


def test_configs_round_trip_and_refuse_unknown_keys():
    from omni.mufun.config import MuFunConfig, mufun_config

    cfg = build_tiny_mufun_config()
    assert cfg.tokens_per_chunk == 60 and cfg.connector.in_dim == 4 * cfg.whisper.d_model
    for c in (cfg, mufun_config("mufun"), mufun_config("as-documented")):
        assert MuFunConfig(**json.loads(json.dumps(c.to_dict()))) == c
    data = cfg.to_dict()
    data["qwen3"]["rope_sclaing"] = 2.0
    with pytest.raises(TypeError, match="rope_sclaing"):
        MuFunConfig(**data)
    with pytest.raises(ValueError, match="unknown MuFun preset 'qwen'"):
        mufun_config("qwen")
    with pytest.raises(AssertionError, match="connector llm_dim 64 != Qwen3 hidden_size 32"):
        MuFunConfig(whisper=cfg.whisper, connector=cfg.connector, feature_layers=cfg.feature_layers,
                    pool_stride=25, max_seq_len=64, qwen3=Qwen3Config(hidden_size=32, n_heads=2, n_kv_heads=1,
                                                                      head_dim=16, max_position_embeddings=64))
