"""Configurations of the full-size path: Whisper encoder, BLP connector, Qwen3, and MuFun as a whole.

Two presets:

``mufun`` (the default): the real models MuFun is built from, as their
``config.json`` files give them (openai/whisper-large-v3, Qwen/Qwen3-8B-Base)
and as MuFun's code combines them (laitselec/MuFun: ``features_layers =
[0, 7, 15, 32]``, ``pool_stride = 5``, connector ``blp_4i_2x``,
``model_max_length 4096`` in ``scripts/finetune.sh``).

``as-documented``: the numbers the MuFun documents (seeds 000–003) print, so
the tests can assert every documented shape. It differs from ``mufun`` in
80 mel bins, an encoder that keeps 3000 positions, a 3584-wide, 32-layer
decoder and a 151,000-token vocabulary. docs/errata.md lists every difference
with its source.

How "the encoder keeps 3000 positions" is realised: ``conv2_stride = 1`` (Whisper's
second convolution normally has stride 2 and halves 3000 mel frames to 1500
positions) with 3000 sinusoidal positions. Nothing else changes, so the same
code runs both presets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from omni.audio.whisper_mel import N_FRAMES


@dataclass
class WhisperConfig:
    n_mels: int = 128            # F: mel bins of the input (80 before large-v3)
    d_model: int = 1280
    n_layers: int = 32
    n_heads: int = 20            # head_dim = 1280 / 20 = 64
    ffn_dim: int = 5120
    n_positions: int = 1500      # encoder positions = mel frames / conv2_stride ("max_source_positions")
    conv2_stride: int = 2        # 2 in every real Whisper; 1 in the as-documented preset (keeps 3000)
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        assert self.d_model % self.n_heads == 0, f"d_model {self.d_model} not divisible by n_heads {self.n_heads}"
        assert self.conv2_stride in (1, 2), f"conv2_stride must be 1 or 2, got {self.conv2_stride}"
        assert self.d_model % 2 == 0, f"sinusoidal positions need an even d_model, got {self.d_model}"

    @property
    def n_frames(self) -> int:
        """Mel frames the encoder takes (3000 for every real Whisper)."""
        return self.n_positions * self.conv2_stride


@dataclass
class ConnectorConfig:
    """BLP_4i_2x: Linear(4i → 2·4i) – GELU – Linear(2·4i → LLM hidden), i = Whisper width."""

    audio_dim: int = 1280        # i: width of one Whisper hidden state
    n_inputs: int = 4            # "4i": hidden states of 4 layers concatenated
    expand: int = 2              # "2x": the middle layer is 2 × the input width
    llm_dim: int = 4096          # output = the decoder's hidden size

    @property
    def in_dim(self) -> int:
        return self.n_inputs * self.audio_dim        # 5120

    @property
    def hidden_dim(self) -> int:
        return self.expand * self.in_dim              # 10240

    @property
    def n_params(self) -> int:
        return self.in_dim * self.hidden_dim + self.hidden_dim + self.hidden_dim * self.llm_dim + self.llm_dim


@dataclass
class Qwen3Config:
    vocab_size: int = 151_936
    hidden_size: int = 4096
    n_layers: int = 36
    n_heads: int = 32
    n_kv_heads: int = 8           # grouped-query attention: 4 query heads share one kv head
    head_dim: int = 128           # given explicitly (32 × 128 = 4096 here, but not in every Qwen3)
    intermediate_size: int = 12_288
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 32_768   # Qwen3-8B-Base's context (not MuFun's 4096 truncation)
    tie_word_embeddings: bool = False       # True for the small Qwen3s (0.6B–4B)

    def __post_init__(self):
        assert self.n_heads % self.n_kv_heads == 0, \
            f"n_heads {self.n_heads} not a multiple of n_kv_heads {self.n_kv_heads}"
        assert self.head_dim % 2 == 0, f"RoPE needs an even head_dim, got {self.head_dim}"


@dataclass
class MuFunConfig:
    whisper: WhisperConfig = field(default_factory=WhisperConfig)
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    qwen3: Qwen3Config = field(default_factory=Qwen3Config)
    feature_layers: tuple[int, ...] = (0, 7, 15, 32)   # hidden-state indices (0 = after positions, 32 = final)
    pool_stride: int = 5          # average pooling over encoder positions: 1500 → 300 tokens per chunk
    max_seq_len: int = 4096       # MuFun's training length (model_max_length); fused sequences must fit

    def __post_init__(self):
        if isinstance(self.whisper, dict):
            self.whisper = WhisperConfig(**self.whisper)
        if isinstance(self.connector, dict):
            self.connector = ConnectorConfig(**self.connector)
        if isinstance(self.qwen3, dict):
            self.qwen3 = Qwen3Config(**self.qwen3)
        self.feature_layers = tuple(self.feature_layers)
        w, c, q = self.whisper, self.connector, self.qwen3
        bad = [i for i in self.feature_layers if not 0 <= i <= w.n_layers]
        assert not bad, f"feature_layers {bad} outside the hidden-state indices 0..{w.n_layers}"
        assert len(self.feature_layers) == c.n_inputs, \
            f"{len(self.feature_layers)} feature layers but the connector takes {c.n_inputs} ('{c.n_inputs}i')"
        assert c.audio_dim == w.d_model, f"connector audio_dim {c.audio_dim} != Whisper d_model {w.d_model}"
        assert c.llm_dim == q.hidden_size, f"connector llm_dim {c.llm_dim} != Qwen3 hidden_size {q.hidden_size}"
        assert w.n_positions % self.pool_stride == 0, \
            f"Whisper positions {w.n_positions} not divisible by pool_stride {self.pool_stride}"
        assert self.max_seq_len <= q.max_position_embeddings, \
            f"max_seq_len {self.max_seq_len} exceeds Qwen3's max_position_embeddings {q.max_position_embeddings}"

    @property
    def tokens_per_chunk(self) -> int:
        """Audio tokens one 30-second chunk becomes: 1500 / 5 = 300 (3000 / 5 = 600 as documented)."""
        return self.whisper.n_positions // self.pool_stride

    def to_dict(self) -> dict:
        d = asdict(self)
        d["feature_layers"] = list(self.feature_layers)
        return d


def _mufun() -> MuFunConfig:
    return MuFunConfig()


def _as_documented() -> MuFunConfig:
    # Whisper: 80 bins and 3000 kept positions (seed 000 steps 2.1–2.5).
    # Decoder: hidden 3584, 32 layers, vocab 151,000 (seed 000 steps 5.1–5.2). The seeds print no head
    # counts or MLP width; these are Qwen2.5-7B's (the model 3584 belongs to): 28 heads, 4 kv heads, 18944.
    return MuFunConfig(
        whisper=WhisperConfig(n_mels=80, n_positions=N_FRAMES, conv2_stride=1),
        connector=ConnectorConfig(llm_dim=3584),
        qwen3=Qwen3Config(vocab_size=151_000, hidden_size=3584, n_layers=32, n_heads=28, n_kv_heads=4,
                          intermediate_size=18_944),
    )


PRESETS = {"mufun": _mufun, "as-documented": _as_documented}


def mufun_config(preset: str = "mufun") -> MuFunConfig:
    """The named preset: ``mufun`` (real models) or ``as-documented`` (the seeds' numbers)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown MuFun preset {preset!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[preset]()


def build_tiny_mufun_config(vocab_size: int = 512, max_seq_len: int = 512) -> MuFunConfig:
    """A small random MuFun for CPU tests and the tiny training run.

    Same structure as the real one (3000 mel frames → 1500 positions, four
    feature layers, BLP_4i_2x, GQA decoder with q/k-norm), narrower and shallower;
    pooling by 25 gives 60 audio tokens per 30-second chunk so sequences stay short.
    """
    return MuFunConfig(
        whisper=WhisperConfig(n_mels=16, d_model=32, n_layers=3, n_heads=2, ffn_dim=64),
        connector=ConnectorConfig(audio_dim=32, llm_dim=64),
        qwen3=Qwen3Config(vocab_size=vocab_size, hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                          intermediate_size=128, max_position_embeddings=max_seq_len, tie_word_embeddings=True),
        feature_layers=(0, 1, 2, 3),
        pool_stride=25,
        max_seq_len=max_seq_len,
    )
