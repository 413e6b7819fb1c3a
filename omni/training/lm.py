"""The language-model objective shared by the text stages: packing, next-token loss, bits per character.

Packing: every line of the corpus becomes ``BOS pieces… EOS``; the lines are
concatenated into one token stream and cut into windows of ``ctx_len + 1``
tokens with stride ``ctx_len``, so each window gives ``ctx_len`` (input,
target) pairs and every token of the stream (but the first) is a target once::

    stream  [BOS a b c EOS BOS d e EOS BOS f ...]
    window  [t0 … t_ctx]  →  input t0 … t_ctx-1 (B, T),  target t1 … t_ctx (B, T)

Bits per character: the summed cross-entropy of the held-out stream, in bits,
divided by its characters — each line's length plus one for its end of line
(the model predicts that as EOS). Unlike nats per token, it does not depend on
the tokenizer, so it can be set next to the data's entropy floor.

The training loss is :class:`NextTokenLoss`, a module around the Thinker whose
``forward`` returns the loss: the fused cross-entropy of the head never writes
the (B, T, V) logits, and a module is what DistributedDataParallel can wrap.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from omni.models.thinker import ThinkerLM
from omni.nn import check_finite
from omni.nn.cross_entropy import linear_cross_entropy
from omni.tokenizer import BPETokenizer


def encode_lines(tok: BPETokenizer, lines: list[str]) -> torch.Tensor:
    """One int64 stream (N,) of ``BOS pieces EOS`` per line."""
    ids: list[int] = []
    for line in lines:
        ids.extend(tok.encode(line, add_bos=True, add_eos=True))
    return torch.tensor(ids, dtype=torch.int64)


def count_chars(lines: list[str]) -> int:
    """Characters the stream of ``lines`` stands for: the text plus one end-of-line each."""
    return sum(len(line) + 1 for line in lines)


def pack_windows(stream: torch.Tensor, ctx_len: int) -> torch.Tensor:
    """(N,) → (W, ctx_len + 1) windows, stride ctx_len; the tail shorter than a window is dropped."""
    assert stream.dim() == 1, f"token stream must be 1-D, got shape {tuple(stream.shape)}"
    n_windows = (stream.numel() - 1) // ctx_len
    if n_windows < 1:
        raise ValueError(f"token stream of {stream.numel()} tokens is too short for one window of "
                         f"{ctx_len} + 1 tokens; use a larger corpus or a smaller ctx_len")
    idx = torch.arange(n_windows)[:, None] * ctx_len + torch.arange(ctx_len + 1)[None, :]
    return stream[idx]                                                   # (W, ctx_len + 1)


class NextTokenLoss(nn.Module):
    """ThinkerLM's training objective as a module: ``forward(ids, targets)`` → the mean next-token cross-entropy.

    ids (B, T) and targets (B, T) (ids, or ``IGNORE_INDEX`` for no target) → an fp32 scalar equal to
    ``F.cross_entropy(thinker(ids).flatten(0, 1), targets.flatten())``, computed from
    :meth:`ThinkerLM.hidden_states` by :func:`~omni.nn.cross_entropy.linear_cross_entropy`, which never
    materialises the (B, T, V) logits (docs/performance.md: the head's forward + backward 0.78× the plain way).
    ``thinker(ids)`` itself always returns logits.

    Why a module and not a function of the Thinker: DistributedDataParallel all-reduces the gradients of a
    backward pass only when the forward went through the wrapper's own ``forward``. ``fit(..., train_module=
    NextTokenLoss(model))`` wraps this module, so the whole loss (hidden states, head, cross-entropy) runs
    inside DDP's forward; checkpoints and the export stay the Thinker's (``fit``'s ``model``), since this
    module holds no weights of its own (tests/test_training_ddp.py checks the gradients against one process).
    """

    def __init__(self, thinker: ThinkerLM):
        super().__init__()
        self.thinker = thinker

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = self.thinker.hidden_states(ids)                                  # (B, T, C)
        assert targets.shape == h.shape[:2], f"targets {tuple(targets.shape)} != positions {tuple(h.shape[:2])}"
        loss = linear_cross_entropy(h.flatten(0, 1), self.thinker.lm_head.weight, targets.flatten())
        if self.thinker.cfg.check_finite:
            check_finite(loss, "ThinkerLM loss (from its logits)")
        return loss


def next_token_loss(objective: nn.Module, batch: torch.Tensor):
    """The thinker stage's loss_fn: batch (B, T+1) → the mean cross-entropy over the B·T next-token predictions
    and the token count. ``objective`` is :class:`NextTokenLoss` (DDP-wrapped in a multi-process run)."""
    assert batch.dim() == 2, f"expected windows (B, T+1), got {tuple(batch.shape)}"
    inputs, targets = batch[:, :-1], batch[:, 1:]                        # (B, T) each
    loss = objective(inputs, targets)
    return loss, {"tokens": targets.numel()}


@torch.no_grad()
def stream_cross_entropy(model, stream: torch.Tensor, ctx_len: int, batch_size: int) -> tuple[float, int]:
    """Summed cross-entropy (nats) of predicting stream[1:] from its prefix, in ctx_len chunks; and the count.

    Every target is scored once; context restarts at each chunk boundary (as in training).
    """
    device = next(model.parameters()).device
    total, count = 0.0, 0
    full = (stream.numel() - 1) // ctx_len
    chunks = [stream[i * ctx_len:(i + 1) * ctx_len + 1] for i in range(full)]
    tail = stream[full * ctx_len:]
    for start in range(0, len(chunks), batch_size):
        batch = torch.stack(chunks[start:start + batch_size]).to(device)   # (B, ctx_len + 1)
        logits = model(batch[:, :-1])
        total += float(F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten(), reduction="sum"))
        count += batch[:, 1:].numel()
    if tail.numel() > 1:                                                 # the last, shorter chunk
        tail = tail[None].to(device)                                     # (1, t + 1)
        logits = model(tail[:, :-1])
        total += float(F.cross_entropy(logits.float().flatten(0, 1), tail[:, 1:].flatten(), reduction="sum"))
        count += tail.numel() - 1
    return total, count


def bits_per_char(model, stream: torch.Tensor, n_chars: int, ctx_len: int, batch_size: int) -> dict:
    """``val_loss`` (nats per token, comparable with the training loss) and ``val_bpc``."""
    nats, n_tokens = stream_cross_entropy(model, stream, ctx_len, batch_size)
    return {"val_loss": nats / n_tokens, "val_bpc": nats / math.log(2) / n_chars}
