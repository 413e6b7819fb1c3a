"""CTC decoding: greedy (the default), prefix beam search, and a character n-gram language model.

    log_probs (T', V) of one clip ──greedy_decode──▶ text         arg-max per frame, repeats merged, blanks dropped
                                  ──beam_decode───▶ text         CTC prefix beam search (+ optional CharNgramLM)

**Prefix beam search** (Hannun et al. 2014, "First-pass large vocabulary
continuous speech recognition using bi-directional recurrent DNNs") keeps the
``beam`` best *prefixes* (collapsed label sequences), each with two
probabilities: of all frame paths so far that end in a blank (``p_b``) and of
those that end in the prefix's last character (``p_nb``). Greedy decoding
follows the single best frame path; a transcript's probability is the sum
over *all* its frame paths, and beam search approximates that sum, so it can
prefer a transcript that no single best frame spells out.

With a language model, extending a prefix by character ``c`` multiplies its
score by ``P_lm(c | prefix) ** alpha`` and a bonus ``exp(beta)`` per character
(which offsets the LM's bias towards short outputs); the end of the sentence
is scored once at the end. ``lm=None`` (or ``alpha = beta = 0``) is pure CTC
prefix beam search.

**CharNgramLM**: an interpolated Witten-Bell character n-gram trained on lines
of text (the world's *training* text only, so held-out sentences stay unseen):

    P(c | h) = (C(h c) + N1+(h •) · P(c | h')) / (C(h) + N1+(h •))    h' = h without its first character

down to a uniform distribution over the CTC characters and the end of the
sentence. Every line starts with ``order − 1`` start symbols.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from omni.tokenizer import CTC_BLANK_ID, CharVocab

NEG_INF = float("-inf")
BOS, EOS = "\x02", "\x03"        # start padding and end of sentence: neither is a CTC character


class CharNgramLM:
    """Interpolated Witten-Bell character n-gram (see the module docstring)."""

    def __init__(self, order: int = 6, vocab: CharVocab | None = None):
        assert order >= 1, f"an n-gram needs order ≥ 1, got {order}"
        self.order, self.vocab = order, vocab or CharVocab()
        self.n_symbols = len(self.vocab.chars) + 1                 # the characters and EOS
        self.next_counts: dict[str, Counter] = defaultdict(Counter)   # context (0..order-1 chars) → next-char counts
        self._cache: dict[tuple[str, str], float] = {}

    @classmethod
    def train(cls, lines, order: int = 6, vocab: CharVocab | None = None) -> "CharNgramLM":
        lm = cls(order, vocab)
        for line in lines:
            text = line.rstrip("\n")
            if not text:
                continue
            unknown = lm.vocab.unknown_chars(text)
            if unknown:
                raise ValueError(f"CharNgramLM: line {text!r} has characters outside the CTC vocabulary: "
                                 f"{sorted(unknown)}")
            padded = BOS * (order - 1) + text + EOS
            for i in range(order - 1, len(padded)):
                for n in range(order):                             # contexts of 0 .. order-1 characters
                    lm.next_counts[padded[i - n: i]][padded[i]] += 1
        return lm

    def context(self, prefix: str) -> str:
        """The last ``order − 1`` characters of ``prefix``, left-padded with the start symbol."""
        k = self.order - 1
        return (BOS * k + prefix)[-k:] if k else ""

    def logp(self, context: str, char: str) -> float:
        """Natural-log probability of ``char`` (a CTC character or :data:`EOS`) after ``context``."""
        key = (context, char)
        if key not in self._cache:
            self._cache[key] = math.log(self._prob(context, char))
        return self._cache[key]

    def _prob(self, context: str, char: str) -> float:
        lower = 1.0 / self.n_symbols if not context else self._prob(context[1:], char)
        counts = self.next_counts.get(context)
        if not counts:
            return lower
        total, types = sum(counts.values()), len(counts)
        return (counts[char] + types * lower) / (total + types)

    def sentence_logp(self, text: str) -> float:
        """log P(text + end of sentence)."""
        return sum(self.logp(self.context(text[:i]), c) for i, c in enumerate(text + EOS))


@dataclass
class BeamConfig:
    beam: int = 8                 # prefixes kept after each frame
    alpha: float = 0.0            # LM weight (0: no LM)
    beta: float = 0.0             # log bonus per emitted character
    prune: float = -8.0           # characters with frame log-prob below this are not tried (blank always is)


def greedy_decode(log_probs: np.ndarray, vocab: CharVocab) -> str:
    """log_probs (T', V) → the arg-max label per frame, repeats merged, blanks dropped."""
    return vocab.ctc_collapse(np.asarray(log_probs).argmax(axis=-1).tolist())


def beam_decode(log_probs: np.ndarray, vocab: CharVocab, cfg: BeamConfig = BeamConfig(),
                lm: CharNgramLM | None = None) -> str:
    """log_probs (T', V) natural-log CTC posteriors of one clip → the best transcript under
    CTC prefix beam search, with ``lm`` weighted by ``cfg.alpha`` if given."""
    lp = np.asarray(log_probs, dtype=np.float64)
    assert lp.ndim == 2 and lp.shape[1] == len(vocab), \
        f"beam_decode expects log_probs (T', {len(vocab)}), got {tuple(lp.shape)}"
    use_lm = lm is not None and cfg.alpha != 0.0

    def bonus(prefix: tuple[int, ...], c: int) -> float:
        if not use_lm:
            return cfg.beta
        text = "".join(vocab.chars[i - 1] for i in prefix[-(lm.order - 1):]) if lm.order > 1 else ""
        return cfg.alpha * lm.logp(lm.context(text), vocab.chars[c - 1]) + cfg.beta

    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}     # prefix → (log p_b, log p_nb)
    for frame in lp:
        chars = [int(c) for c in np.flatnonzero(frame > cfg.prune) if c != CTC_BLANK_ID]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (p_b, p_nb) in beams.items():
            total = np.logaddexp(p_b, p_nb)
            here = nxt[prefix]
            here[0] = np.logaddexp(here[0], total + frame[CTC_BLANK_ID])           # a blank: prefix unchanged
            last = prefix[-1] if prefix else None
            for c in chars:
                ext = nxt[prefix + (c,)]
                if c == last:
                    here[1] = np.logaddexp(here[1], p_nb + frame[c])               # a repeat merges into the prefix
                    ext[1] = np.logaddexp(ext[1], p_b + frame[c] + bonus(prefix, c))   # only after a blank: cc
                else:
                    ext[1] = np.logaddexp(ext[1], total + frame[c] + bonus(prefix, c))
        ranked = sorted(nxt.items(), key=lambda kv: np.logaddexp(*kv[1]), reverse=True)
        beams = {prefix: (p[0], p[1]) for prefix, p in ranked[: cfg.beam]}

    def final(item) -> float:
        prefix, (p_b, p_nb) = item
        score = np.logaddexp(p_b, p_nb)
        if use_lm:
            text = "".join(vocab.chars[i - 1] for i in prefix)
            score += cfg.alpha * lm.logp(lm.context(text), EOS)
        return score

    best, _ = max(beams.items(), key=final)
    return "".join(vocab.chars[i - 1] for i in best)
