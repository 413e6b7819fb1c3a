"""Character error rate (CER) with a documented text normaliser.

CER = (substitutions + deletions + insertions) / reference characters, summed
over a set of utterances (a corpus-level rate, not a mean of per-clip rates, so
short clips do not weigh more than long ones). Both sides pass through
:func:`normalize_text` first:

1. lower-case (``str.lower``);
2. punctuation removed: every character that is not a letter, a digit, an
   apostrophe inside a word (``don't``) or whitespace becomes a space
   (the typographic ’ counts as an apostrophe and becomes ``'``);
3. whitespace collapsed: runs of spaces/tabs/newlines become one space, and the
   ends are stripped.

So ``"Look at the Monkey!"`` and ``"look at the  monkey"`` are the same text; a
missing full stop is not an error, a missing space between words is.
"""

from __future__ import annotations

import re

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
_NOT_WORD = re.compile(r"[^a-z0-9'\s]+")
_LOOSE_APOSTROPHE = re.compile(r"(?<![a-z0-9])'|'(?![a-z0-9])")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower-case, punctuation → space (apostrophes inside words kept), whitespace collapsed and stripped."""
    t = text.lower().translate(_APOSTROPHES)
    t = _NOT_WORD.sub(" ", t)
    t = _LOOSE_APOSTROPHE.sub(" ", t)          # quotes like 'this' are punctuation; don't keeps its '
    return _SPACES.sub(" ", t).strip()


def edit_distance(ref, hyp) -> int:
    """Levenshtein distance between two strings or word lists (unit costs), O(len(ref) · len(hyp))."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def cer(refs: list[str], hyps: list[str], normalize: bool = True) -> float:
    """Corpus CER: Σ edit distance / Σ reference characters (after :func:`normalize_text`)."""
    if len(refs) != len(hyps):
        raise ValueError(f"cer needs one hypothesis per reference, got {len(refs)} references and {len(hyps)} hypotheses")
    if normalize:
        refs, hyps = [normalize_text(r) for r in refs], [normalize_text(h) for h in hyps]
    chars = sum(len(r) for r in refs)
    if chars == 0:
        raise ValueError(f"cer: the {len(refs)} references are empty after normalisation")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / chars


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER: Σ word edit distance / Σ reference words, after :func:`normalize_text`."""
    if len(refs) != len(hyps):
        raise ValueError(f"wer needs one hypothesis per reference, got {len(refs)} references and {len(hyps)} hypotheses")
    refs, hyps = [normalize_text(r).split() for r in refs], [normalize_text(h).split() for h in hyps]
    words = sum(len(r) for r in refs)
    if words == 0:
        raise ValueError(f"wer: the {len(refs)} references are empty after normalisation")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / words
