"""Strict loading of real checkpoints from local Hugging Face folders. Never touches the network.

A folder holds ``config.json`` and the weights, either ``model.safetensors`` or
shards listed in ``model.safetensors.index.json``. What is read:

* Whisper (``openai/whisper-large-v3``): the ``model.encoder.*`` keys of a
  ``WhisperForConditionalGeneration`` folder (decoder keys are not MuFun's and
  are left alone), or every key of a bare ``WhisperEncoder.save_pretrained``
  folder, which has no prefix.
* Qwen3 (``Qwen/Qwen3-8B-Base``): ``model.*`` and ``lm_head.*`` (``lm_head``
  is absent when ``tie_word_embeddings`` is true).
* The connector: one safetensors file with ``linear1.*``/``linear2.*``, bare or
  under MuFun's ``connector._connector.`` prefix.

Strict means: a missing key, an unexpected key or a key of the wrong shape is
an error that names every such key; configs are read key by key and settings
this implementation does not have (another activation, attention biases, RoPE
scaling) are refused rather than ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import torch

from omni.mufun.blp import BLPConnector
from omni.mufun.config import ConnectorConfig, MuFunConfig, Qwen3Config, WhisperConfig
from omni.mufun.model import MuFunModel
from omni.mufun.qwen3 import HF_PREFIX, Qwen3LM
from omni.mufun.whisper import HF_RENAMES, WhisperEncoder
from omni.nn import RotaryEmbedding
from omni.checkpoint import CheckpointError, load_model_state, read_json_object, read_safetensors

WHISPER_PREFIX = "model.encoder."
CONNECTOR_PREFIXES = ("connector._connector.", "")     # MuFun's full-model prefix, or bare



# -- files ---------------------------------------------------------------------------
def read_config(folder: str | os.PathLike) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"no config.json in {folder}")
    return read_json_object(path)


def read_safetensors_folder(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of ``model.safetensors`` or of the shards named by ``model.safetensors.index.json``."""
    folder = Path(folder)
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return read_safetensors(single)
    if index.is_file():
        weight_map = read_json_object(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index}: no \"weight_map\" object naming each tensor's shard")
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = folder / shard
            if not shard_path.is_file():
                raise CheckpointError(f"{index} names shard {shard}, which is missing from {folder}")
            part = read_safetensors(shard_path)
            listed = {k for k, v in weight_map.items() if v == shard}
            if set(part) != listed:
                raise CheckpointError(f"shard {shard_path} holds {sorted(set(part) ^ listed)[:10]} not as the index says")
            state.update(part)
        return state
    raise CheckpointError(f"no model.safetensors or model.safetensors.index.json in {folder}")


# -- configs from HF config.json --------------------------------------------------------
def _require(cfg: dict, key: str, where: str):
    if key not in cfg:
        raise CheckpointError(f"{where}: config.json has no {key!r}")
    return cfg[key]


def _refuse(cfg: dict, key: str, allowed: tuple, where: str) -> None:
    """Refuse a setting we do not implement. An absent key means HF's default, which is allowed[0]."""
    if cfg.get(key, allowed[0]) not in allowed:
        raise CheckpointError(f"{where}: {key}={cfg[key]!r} is not supported here (supported: {allowed})")


def whisper_config_from_hf(cfg: dict, where: str = "whisper") -> WhisperConfig:
    if cfg.get("model_type") != "whisper":
        raise CheckpointError(f"{where}: model_type is {cfg.get('model_type')!r}, expected 'whisper'")
    _refuse(cfg, "activation_function", ("gelu",), where)
    _refuse(cfg, "scale_embedding", (False,), where)
    return WhisperConfig(n_mels=_require(cfg, "num_mel_bins", where), d_model=_require(cfg, "d_model", where),
                         n_layers=_require(cfg, "encoder_layers", where),
                         n_heads=_require(cfg, "encoder_attention_heads", where),
                         ffn_dim=_require(cfg, "encoder_ffn_dim", where),
                         n_positions=_require(cfg, "max_source_positions", where), conv2_stride=2)


def qwen3_config_from_hf(cfg: dict, where: str = "qwen3") -> Qwen3Config:
    if cfg.get("model_type") != "qwen3":
        raise CheckpointError(f"{where}: model_type is {cfg.get('model_type')!r}, expected 'qwen3'")
    _refuse(cfg, "hidden_act", ("silu",), where)
    _refuse(cfg, "attention_bias", (False,), where)
    _refuse(cfg, "use_sliding_window", (False,), where)
    _refuse(cfg, "rope_scaling", (None,), where)
    rope = cfg.get("rope_parameters")                   # transformers ≥ 5 nests it; 4.x keeps rope_theta on top
    if rope is not None:
        _refuse(rope, "rope_type", ("default",), where)
        theta = _require(rope, "rope_theta", where + " rope_parameters")
    else:
        theta = _require(cfg, "rope_theta", where)
    return Qwen3Config(vocab_size=_require(cfg, "vocab_size", where), hidden_size=_require(cfg, "hidden_size", where),
                       n_layers=_require(cfg, "num_hidden_layers", where),
                       n_heads=_require(cfg, "num_attention_heads", where),
                       n_kv_heads=_require(cfg, "num_key_value_heads", where),
                       head_dim=_require(cfg, "head_dim", where),
                       intermediate_size=_require(cfg, "intermediate_size", where), rope_theta=float(theta),
                       rms_norm_eps=_require(cfg, "rms_norm_eps", where),
                       max_position_embeddings=_require(cfg, "max_position_embeddings", where),
                       tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)))  # Qwen3Config's default


def whisper_state_from_hf(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """HF keys → ours: pick ``model.encoder.*`` (or a bare encoder) and apply :data:`HF_RENAMES`."""
    if any(k.startswith(WHISPER_PREFIX) for k in state):
        picked = {k[len(WHISPER_PREFIX):]: v for k, v in state.items() if k.startswith(WHISPER_PREFIX)}
    elif "conv1.weight" in state:
        picked = dict(state)            # WhisperEncoder.save_pretrained writes bare keys
    else:
        raise CheckpointError(f"{source}: no '{WHISPER_PREFIX}*' keys and no bare 'conv1.weight': not a Whisper checkpoint")
    out = {}
    for k, v in picked.items():
        for old, new in HF_RENAMES.items():            # e.g. layers.3.fc1.weight → layers.3.mlp.fc1.weight
            k = k.replace(f".{old}", f".{new}")
        out[k] = v
    return out


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype | None, device) -> dict[str, torch.Tensor]:
    return {k: v.to(device=device, dtype=dtype if dtype is not None and v.is_floating_point() else v.dtype)
            for k, v in state.items()}


def load_whisper(folder: str | os.PathLike, dtype: torch.dtype | None = None, device="cpu") -> WhisperEncoder:
    cfg = whisper_config_from_hf(read_config(folder), where=str(folder))
    with torch.device("meta"):
        model = WhisperEncoder(cfg)
    state = _cast(whisper_state_from_hf(read_safetensors_folder(folder), str(folder)), dtype, device)
    load_model_state(model, state, f"Whisper checkpoint {folder}", assign=True)
    model.embed_positions.requires_grad_(False)
    return model


def load_qwen3(folder: str | os.PathLike, dtype: torch.dtype | None = None, device="cpu",
               ctx_len: int | None = None) -> Qwen3LM:
    cfg = qwen3_config_from_hf(read_config(folder), where=str(folder))
    with torch.device("meta"):
        model = Qwen3LM(cfg, ctx_len=ctx_len)
    raw = read_safetensors_folder(folder)
    state = {(k[len(HF_PREFIX):] if k.startswith(HF_PREFIX) else k): v for k, v in raw.items()}
    if cfg.tie_word_embeddings and "lm_head.weight" in state:
        if not torch.equal(state["lm_head.weight"], state.get("embed_tokens.weight", torch.empty(0))):
            raise CheckpointError(f"{folder}: tie_word_embeddings is true but lm_head.weight differs from embed_tokens")
        del state["lm_head.weight"]
    # a tied lm_head.weight is embed_tokens.weight: load_model_state re-adds it (omni.checkpoint.tie_aliases)
    load_model_state(model, _cast(state, dtype, device), f"Qwen3 checkpoint {folder}", assign=True)
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.embed_tokens.weight          # re-tie after assign
    model.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_theta).to(device)   # non-persistent buffer: rebuild
    return model


def load_connector(path: str | os.PathLike, cfg: ConnectorConfig, dtype: torch.dtype | None = None,
                   device="cpu") -> BLPConnector:
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise CheckpointError(f"connector file not found: {path}")
    raw = load_file(str(path))
    prefix = next((p for p in CONNECTOR_PREFIXES if f"{p}linear1.weight" in raw), None)
    if prefix is None:
        raise CheckpointError(f"{path}: no 'linear1.weight' (bare or under {CONNECTOR_PREFIXES[0]!r}); keys {sorted(raw)[:8]}")
    state = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in raw.items()}
    with torch.device("meta"):
        model = BLPConnector(cfg)
    load_model_state(model, _cast(state, dtype, device), f"connector file {path}", assign=True)
    return model


def save_connector(connector: BLPConnector, path: str | os.PathLike) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in connector.state_dict().items()}, str(path))
    return path


def load_mufun(whisper_dir, qwen3_dir, connector_file, max_seq_len: int = 4096, feature_layers=(0, 7, 15, 32),
               pool_stride: int = 5, dtype: torch.dtype | None = None, device="cpu") -> MuFunModel:
    """Assemble MuFun from the three checkpoints; the config is read from their config.json files."""
    whisper = load_whisper(whisper_dir, dtype, device)
    llm = load_qwen3(qwen3_dir, dtype, device, ctx_len=max_seq_len)
    cfg = MuFunConfig(whisper=whisper.cfg, qwen3=llm.cfg, feature_layers=tuple(feature_layers),
                      pool_stride=pool_stride, max_seq_len=max_seq_len,
                      connector=ConnectorConfig(audio_dim=whisper.cfg.d_model, n_inputs=len(feature_layers),
                                                llm_dim=llm.cfg.hidden_size))
    connector = load_connector(connector_file, cfg.connector, dtype, device)
    return MuFunModel(cfg, whisper=whisper, connector=connector, llm=llm)


def load_tokenizer(folder: str | os.PathLike):
    """The ``tokenizers`` Tokenizer of a local folder's tokenizer.json (Qwen's byte-level BPE)."""
    from tokenizers import Tokenizer

    path = Path(folder) / "tokenizer.json"
    if Path(folder).is_file() and str(folder).endswith(".json"):
        path = Path(folder)
    if not path.is_file():
        raise CheckpointError(f"no tokenizer.json in {folder}")
    return Tokenizer.from_file(str(path))


# -- what is missing, before loading anything --------------------------------------------
def _weights_missing(folder: Path) -> list[str]:
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return []
    if not index.is_file():
        return [f"{single} (or {index.name} with its shards)"]
    try:
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (json.JSONDecodeError, KeyError, AttributeError) as err:
        return [f"{index} is not a readable shard index ({type(err).__name__}: {err})"]
    return [f"{folder / s} (a shard named by {index.name})" for s in shards if not (folder / s).is_file()]


def missing_files(whisper: str | os.PathLike | None, qwen3: str | os.PathLike | None,
                  connector: str | os.PathLike | None, tokenizer: str | os.PathLike | None = None) -> list[str]:
    """Everything :func:`load_mufun` and :func:`load_tokenizer` would miss, one line each; [] when all is there.

    Looks at file names (and a shard index) only; loads nothing and never downloads.
    ``tokenizer`` defaults to the Qwen3 folder, where ``tokenizer.json`` ships.
    """
    lines: list[str] = []
    for flag, folder, what in (("--whisper", whisper, "openai/whisper-large-v3"),
                               ("--qwen", qwen3, "Qwen/Qwen3-8B-Base")):
        if folder is None:
            lines.append(f"{flag}: not given (a local {what} folder: config.json + model.safetensors)")
        elif not Path(folder).is_dir():
            lines.append(f"{flag} {folder}: folder not found (a local {what} folder: config.json + model.safetensors)")
        else:
            folder = Path(folder)
            if not (folder / "config.json").is_file():
                lines.append(f"{folder / 'config.json'}")
            lines.extend(_weights_missing(folder))
    if connector is None:
        lines.append("--connector: not given (the BLP connector's weights, one .safetensors file; see docs/mufun.md)")
    elif not Path(connector).is_file():
        lines.append(f"--connector {connector}: file not found")
    tok = tokenizer if tokenizer is not None else qwen3
    if tok is not None and not (str(tok).endswith(".json") and Path(tok).is_file()):
        if Path(tok).is_dir() and not (Path(tok) / "tokenizer.json").is_file():
            lines.append(f"{Path(tok) / 'tokenizer.json'}")
        elif not Path(tok).exists() and tokenizer is not None:
            lines.append(f"--tokenizer {tok}: not found (a folder with tokenizer.json, or the file itself)")
    return lines
