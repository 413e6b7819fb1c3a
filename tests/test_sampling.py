"""sample_next against the exact distribution it should draw from.

The reference below is written out longhand (python lists, one row at a time): softmax of
logits / T, keep the k largest, renormalise, keep the smallest most-likely set whose mass
reaches p, renormalise. Many draws with a fixed generator must land within a total-variation
distance TV_BOUND of it; each test also checks that a plausible wrong formula (l · T instead of
l / T, top-p before top-k, a mask left in sorted order) is several bounds away, so it would fail.
The logits are deliberately unsorted, and a batch mixes rows whose nuclei differ in size.
"""

import math

import pytest
import torch

from omni.generation.sampling import SamplingConfig, sample_next

N_DRAWS = 40_000    # per row; the sampling noise of the TV estimate is ≈ 0.006 for 8 tokens
TV_BOUND = 0.02

ROW_A = [1.0, 3.0, -0.5, 2.2, 0.3, 2.9, -1.0, 1.7]    # unsorted; sorted order 1, 5, 3, 7, 0, 4, 2, 6
ROW_B = [0.2, -1.0, 4.0, 0.1, 0.9, -0.3, 1.5, 0.0]    # one dominant token: a smaller nucleus than A's


def softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def reference(logits: list[float], temperature: float, top_k: int | None = None, top_p: float | None = None,
              top_p_first: bool = False) -> list[float]:
    """The target distribution over the row's tokens (``top_p_first``: a wrong order, for contrast)."""
    probs = softmax([x / temperature for x in logits])
    order = sorted(range(len(probs)), key=lambda i: -probs[i])

    def keep_top_k(p):
        kept = set(order[:top_k]) if top_k is not None else set(range(len(p)))
        q = [v if i in kept else 0.0 for i, v in enumerate(p)]
        return [v / sum(q) for v in q]

    def keep_top_p(p):
        if top_p is None:
            return p
        kept, mass = set(), 0.0
        for i in sorted(range(len(p)), key=lambda i: -p[i]):
            if mass >= top_p:
                break
            kept.add(i)
            mass += p[i]
        q = [v if i in kept else 0.0 for i, v in enumerate(p)]
        return [v / sum(q) for v in q]

    return keep_top_k(keep_top_p(probs)) if top_p_first else keep_top_p(keep_top_k(probs))


def tv(p: list[float], q: list[float]) -> float:
    return 0.5 * sum(abs(a - b) for a, b in zip(p, q))


def frequencies(rows: list[list[float]], cfg: SamplingConfig, seed: int = 0) -> list[list[float]]:
    """Empirical distribution of each row from N_DRAWS draws; the rows are interleaved in one batch."""
    V = len(rows[0])
    logits = torch.tensor(rows).repeat(N_DRAWS, 1)                      # (N · R, V): row r at r, r + R, ...
    ids = sample_next(logits, cfg, torch.Generator().manual_seed(seed))
    assert ids.shape == (logits.shape[0],) and ids.dtype == torch.long
    per_row = ids.view(N_DRAWS, len(rows))
    return [(torch.bincount(per_row[:, r], minlength=V).double() / N_DRAWS).tolist() for r in range(len(rows))]


CASES = {   # name → (SamplingConfig kwargs, the wrong formula it must tell apart)
    "temperature 0.5": (dict(temperature=0.5), dict(temperature=2.0)),           # l · T == l / (1/T)
    "temperature 2": (dict(temperature=2.0), dict(temperature=0.5)),
    "top-k 3, T 0.7": (dict(temperature=0.7, top_k=3), dict(temperature=0.7)),
    "top-p 0.8, T 1.3": (dict(temperature=1.3, top_p=0.8), dict(temperature=1.3)),
    "top-k 3 + top-p 0.75, T 0.8": (dict(temperature=0.8, top_k=3, top_p=0.75),
                                    dict(temperature=0.8, top_k=3, top_p=0.75, top_p_first=True)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_draws_follow_the_exact_distribution_row_by_row(name):
    right, wrong = CASES[name]
    got = frequencies([ROW_A, ROW_B], SamplingConfig(**right))
    for row, freq in zip([ROW_A, ROW_B], got):
        want = reference(row, **right)
        assert tv(freq, want) < TV_BOUND, (name, [round(f, 3) for f in freq], [round(w, 3) for w in want])
        assert all(f == 0 for f, w in zip(freq, want) if w == 0), (name, freq, want)   # never outside the set
    assert tv(reference(ROW_A, **wrong), reference(ROW_A, **right)) > 4 * TV_BOUND, name   # the test can fail


def test_top_p_keeps_the_nucleus_of_unsorted_logits_per_row():
    cfg = SamplingConfig(temperature=1.0, top_p=0.85)
    a, b = (reference(r, 1.0, top_p=0.85) for r in (ROW_A, ROW_B))
    assert [i for i, v in enumerate(a) if v > 0] == [1, 3, 5, 7]            # four tokens, not the first four ids
    assert [i for i, v in enumerate(b) if v > 0] == [2, 6]                  # a different nucleus in the same batch
    fa, fb = frequencies([ROW_A, ROW_B], cfg, seed=1)
    assert {i for i, f in enumerate(fa) if f > 0} == {1, 3, 5, 7}
    assert {i for i, f in enumerate(fb) if f > 0} == {2, 6}


def test_top_k_is_per_row_and_rows_do_not_leak():
    cfg = SamplingConfig(temperature=1.0, top_k=2)
    fa, fb = frequencies([ROW_A, ROW_B], cfg, seed=2)
    assert {i for i, f in enumerate(fa) if f > 0} == {1, 5}
    assert {i for i, f in enumerate(fb) if f > 0} == {2, 6}
    # the same row alone draws from the same distribution as inside the batch
    alone = frequencies([ROW_B], cfg, seed=3)[0]
    assert tv(alone, fb) < TV_BOUND


def test_a_fixed_generator_repeats_its_draws_and_greedy_ignores_it():
    logits = torch.tensor([ROW_A, ROW_B]).repeat(50, 1)
    cfg = SamplingConfig(temperature=0.9, top_k=4, top_p=0.9)
    first = sample_next(logits, cfg, torch.Generator().manual_seed(7))
    assert torch.equal(first, sample_next(logits, cfg, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, sample_next(logits, cfg, torch.Generator().manual_seed(8)))
    greedy = sample_next(logits, SamplingConfig(temperature=0.0, top_k=1), torch.Generator().manual_seed(7))
    assert greedy.view(50, 2).tolist() == [[1, 2]] * 50
