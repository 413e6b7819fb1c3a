"""Cross-entropy of a linear head, chunk by chunk, without keeping the (N, V) logits.

The plain way, ``F.cross_entropy(h @ W.T, targets)``, writes the logits (N, V),
then their log-softmax (another N × V), keeps both for backward, and backward
writes two more N × V tensors. For the Thinker's training step (N = 8 · 512
positions, V = 5000) each is 82 MB in fp32: memory traffic, not arithmetic.

:func:`linear_cross_entropy` computes the same mean loss over rows of
``chunk`` positions. For each chunk it forms the logits, their log-sum-exp,
and at once the gradient of the loss with respect to them
(``softmax − one_hot``, divided by the number of counted targets), which it
multiplies into the gradients of ``h`` and ``W``. Only a chunk × V block ever
exists, and backward is a multiplication by the incoming scalar gradient.
The matmuls are the same three as the plain way (logits, dh, dW).

Targets equal to ``ignore_index`` count for nothing, as in ``F.cross_entropy``.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100      # torch's default ignore_index (F.cross_entropy): media, prompt and padding positions


def shifted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy in fp32: labels[:, 1:] predicted from logits[:, :-1], IGNORE_INDEX skipped.

    logits : (B, T, V), labels : (B, T). Callers check first that some label is not ignored.
    """
    shift_logits = logits[:, :-1].float()                                      # (B, T-1, V)
    shift_labels = labels[:, 1:]                                               # (B, T-1)
    return torch.nn.functional.cross_entropy(shift_logits.flatten(0, 1), shift_labels.flatten(),
                                             ignore_index=IGNORE_INDEX, reduction=reduction)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, targets, ignore_index: int, chunk: int):
        # h (N, C), weight (V, C), targets (N,); matmuls in autocast's dtype when it is on, softmax in fp32
        dev = h.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.autocast(dev, enabled=False):
            hh, w = h.to(dtype), weight.to(dtype)
            valid = targets != ignore_index                                 # (N,)
            scale = 1.0 / valid.sum().clamp(min=1).to(torch.float32)        # mean over counted targets
            grad_h = torch.empty_like(hh) if need_h else None
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            for s in range(0, h.shape[0], chunk):
                hc, vc = hh[s:s + chunk], valid[s:s + chunk]
                t = torch.where(vc, targets[s:s + chunk], 0)[:, None]       # (n, 1): ignored rows read id 0
                logits = (hc @ w.t()).float()                               # (n, V)
                lse = torch.logsumexp(logits, dim=-1)                       # (n,)
                picked = logits.gather(1, t).squeeze(1)                     # (n,)
                total += ((lse - picked) * vc).sum()
                if need_h or need_w:
                    g = logits.sub_(lse[:, None]).exp_()                    # softmax, in place (n, V)
                    g.scatter_add_(1, t, torch.full_like(t, -1, dtype=g.dtype))   # − one_hot(target)
                    g = g.mul_((vc * scale)[:, None]).to(dtype)             # ignored rows → 0; the mean
                    if need_h:
                        torch.mm(g, w, out=grad_h[s:s + chunk])             # dL/dh = g W       (n, C)
                    if need_w:
                        grad_w += g.t() @ hc                                # dL/dW += gᵀ h     (V, C)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = h.dtype, weight.dtype
        return total * scale

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        gh = (grad_h * grad_out).to(ctx.dtypes[0]) if grad_h is not None else None
        gw = (grad_w * grad_out).to(ctx.dtypes[1]) if grad_w is not None else None
        return gh, gw, None, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         ignore_index: int = IGNORE_INDEX, chunk: int = 256) -> torch.Tensor:
    """Mean cross-entropy of ``h @ weight.T`` against ``targets``, in fp32.

    h: (N, C) hidden states; weight: (V, C) the head; targets: (N,) ids in
    [0, V) or ``ignore_index``. Equal to
    ``F.cross_entropy((h @ weight.T).float(), targets, ignore_index=ignore_index)``
    (tests/test_nn.py), value and gradients; ``chunk`` rows at a time (256 × 5000
    fp32 logits are 5 MB, which stay in cache: 0.78× the plain way's time for the
    Thinker's head, forward + backward, on one CPU core).
    """
    assert h.dim() == 2 and targets.shape == h.shape[:1], \
        f"expected h (N, C) and targets (N,), got {tuple(h.shape)} and {tuple(targets.shape)}"
    assert weight.dim() == 2 and weight.shape[1] == h.shape[1], \
        f"weight must be (V, {h.shape[1]}), got {tuple(weight.shape)}"
    return _LinearCrossEntropy.apply(h, weight, targets, ignore_index, chunk)
