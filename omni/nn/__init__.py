"""Building blocks shared by every model: norms, RoPE, attention with an explicit
KV cache, feed-forward layers, the pre-norm transformer block and the finite-value check."""

from omni.nn.attention import Attention
from omni.nn.block import Block
from omni.nn.checks import check_finite, check_ids
from omni.nn.kv_cache import KVCache
from omni.nn.mlp import SwiGLU
from omni.nn.norm import RMSNorm
from omni.nn.rope import RotaryEmbedding, apply_rope

__all__ = ["Attention", "Block", "KVCache", "SwiGLU", "RMSNorm", "RotaryEmbedding", "apply_rope", "check_finite", "check_ids"]
