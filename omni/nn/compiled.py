"""The optional compiled path: ``torch.compile`` on every transformer block of a model.

Eager PyTorch stays the default and the path a debugger steps through. With
``--compile`` (``omni train … --compile``, ``train.compile: true``,
``omni chat/asr/tts --compile``) each :class:`~omni.nn.Block` is compiled in
place (``Block.compile``): Inductor fuses the norms, RoPE, the SwiGLU gate and
the residual adds into a few generated kernels around the matmuls, and the
per-operator overhead of a decode step shrinks. What stays eager is what talks
to Python: the id checks of ``embed``, the finiteness checks, the sampling loop
and the KV cache's bookkeeping (traced through, its length a dynamic size).

Parameter names and checkpoints are unchanged (the blocks are compiled in
place, not wrapped). The first call of each new shape compiles (tens of
seconds on a CPU); tests/test_compile.py shows compiled and eager agree.
"""

from __future__ import annotations

from torch import nn

from omni.nn.block import Block


def compile_announcement(what: str) -> str:
    """The line a command prints first when ``--compile`` is on."""
    return (f"[compile] {what}: torch.compile on every transformer block (Inductor); the first call of each "
            f"shape compiles, so the first step or token is slow")


def compile_blocks(model: nn.Module) -> int:
    """Compile every :class:`Block` inside ``model`` in place; return how many (0 is an error)."""
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    if not blocks:
        raise ValueError(f"--compile: {type(model).__name__} has no omni.nn.Block to compile")
    for block in blocks:
        block.compile(dynamic=True)        # sequence length and cache length vary: one graph for all
    return len(blocks)
