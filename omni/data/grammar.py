"""A probabilistic context-free grammar (PCFG) that can sample, parse and
report its own entropy — the known source of the synthetic world's text.

Why a grammar: because we wrote the distribution down, we know the best any
language model can ever do on its text. The floor is the entropy rate

    H_char = E[-log2 p(sentence)] / E[characters per sentence]      (bits/char)

computed exactly from the rules (two small linear systems, below) and also
measured on held-out text as  Σ -log2 p(s) / Σ chars(s).

Unambiguity. p(sentence) is the sum over its derivations; we make that a single
term by requiring the grammar to be **LL(1) without empty rules**: the
alternatives of each nonterminal begin with disjoint sets of words. Then a
predictive parser (:meth:`Grammar.parse`) is forced at every step, a sentence
has at most one derivation, and p(sentence) = p(derivation).
:meth:`Grammar.check_ll1` verifies the property and names any conflict.

Notation. Rules are written ``{"NP": [(weight, "the NOUN"), ...]}``; symbols
that are UPPERCASE are nonterminals, everything else (lowercase words and
the punctuation ``. ? ,``) is a terminal. Weights are normalised per
nonterminal. Text is the words joined by spaces, with punctuation attached to
the word before it; every sentence is followed by a newline, which counts as
one character (the language model has to predict the end of the line too).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

PUNCT = frozenset({".", "?", ","})
MAX_SYMBOLS = 10_000          # a runaway recursive grammar stops here with an error


class GrammarError(ValueError):
    """A malformed grammar, an LL(1) conflict, or text outside the language."""


def is_nonterminal(sym: str) -> bool:
    return sym.isupper() and sym.replace("_", "").isalnum()


def detokenize(words: list[str] | tuple[str, ...]) -> str:
    """["a", "red", "circle", "."] → "a red circle." """
    out = ""
    for w in words:
        out += w if (w in PUNCT or not out) else " " + w
    return out


_TOKEN = re.compile(r"[^\s.?,]+|[.?,]")


def tokenize(text: str) -> list[str]:
    """The inverse of :func:`detokenize` for text the grammar can write."""
    return _TOKEN.findall(text)


def text_chars(words: list[str] | tuple[str, ...]) -> int:
    """Characters of the detokenized sentence plus its newline."""
    return sum(len(w) + (0 if w in PUNCT else 1) for w in words)


@dataclass(frozen=True)
class Sentence:
    words: tuple[str, ...]
    bits: float               # -log2 p(sentence) under the grammar

    @property
    def text(self) -> str:
        return detokenize(self.words)


class Grammar:
    """A PCFG over words; see the module docstring for the notation."""

    def __init__(self, rules: dict[str, list[tuple[float, str]]], start: str = "S"):
        if start not in rules:
            raise GrammarError(f"start symbol {start!r} has no rules")
        self.start = start
        self.alts: dict[str, list[tuple[str, ...]]] = {}
        self.probs: dict[str, np.ndarray] = {}
        for lhs in sorted(rules):
            if not is_nonterminal(lhs):
                raise GrammarError(f"left-hand side {lhs!r} must be an UPPERCASE nonterminal")
            alts = [(float(w), tuple(rhs.split())) for w, rhs in rules[lhs]]
            if not alts:
                raise GrammarError(f"nonterminal {lhs} has no alternatives")
            for w, rhs in alts:
                if w <= 0:
                    raise GrammarError(f"{lhs} → {' '.join(rhs)}: weight {w} must be > 0")
                if not rhs:
                    raise GrammarError(f"{lhs}: empty alternatives are not allowed (write the options out)")
                for sym in rhs:
                    if is_nonterminal(sym) and sym not in rules:
                        raise GrammarError(f"{lhs} → {' '.join(rhs)}: {sym} has no rules")
            total = sum(w for w, _ in alts)
            self.alts[lhs] = [rhs for _, rhs in alts]
            self.probs[lhs] = np.array([w / total for w, _ in alts])
        self._cum = {a: np.cumsum(p) for a, p in self.probs.items()}
        self._first: dict[str, frozenset[str]] | None = None

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: np.random.Generator, symbol: str | None = None) -> Sentence:
        """Expand ``symbol`` (default: the start symbol) left to right."""
        stack, words, bits = [symbol or self.start], [], 0.0
        steps = 0
        while stack:
            sym = stack.pop()
            steps += 1
            if steps > MAX_SYMBOLS:
                raise GrammarError(f"sampling from {symbol or self.start} exceeded {MAX_SYMBOLS} symbols")
            if not is_nonterminal(sym):
                words.append(sym)
                continue
            k = min(int(np.searchsorted(self._cum[sym], rng.random(), side="right")), len(self.alts[sym]) - 1)
            bits -= math.log2(self.probs[sym][k])
            stack.extend(reversed(self.alts[sym][k]))
        return Sentence(tuple(words), bits)

    def terminals(self) -> list[str]:
        return sorted({s for alts in self.alts.values() for rhs in alts for s in rhs if not is_nonterminal(s)})

    # ------------------------------------------------------------- LL(1) parsing
    def first_sets(self) -> dict[str, frozenset[str]]:
        """FIRST(A): the words a string derived from A can begin with (fixed point)."""
        if self._first is None:
            first = {a: set() for a in self.alts}
            changed = True
            while changed:
                changed = False
                for a, alts in self.alts.items():
                    for rhs in alts:
                        head = first[rhs[0]] if is_nonterminal(rhs[0]) else {rhs[0]}
                        if not head <= first[a]:
                            first[a] |= head
                            changed = True
            self._first = {a: frozenset(s) for a, s in first.items()}
        return self._first

    def _alt_first(self, rhs: tuple[str, ...]) -> frozenset[str]:
        return self.first_sets()[rhs[0]] if is_nonterminal(rhs[0]) else frozenset({rhs[0]})

    def check_ll1(self) -> None:
        """Raise :class:`GrammarError` naming every nonterminal whose alternatives
        share a first word (which would allow two derivations of one sentence)."""
        problems = []
        for a, alts in self.alts.items():
            seen: dict[str, int] = {}
            for i, rhs in enumerate(alts):
                for w in sorted(self._alt_first(rhs)):
                    if w in seen:
                        problems.append(f"{a}: alternatives {seen[w]} ({' '.join(alts[seen[w]])}) and "
                                        f"{i} ({' '.join(rhs)}) both can start with {w!r}")
                    seen.setdefault(w, i)
        if problems:
            raise GrammarError("grammar is not LL(1):\n  " + "\n  ".join(problems[:20]))

    def parse(self, text: str, symbol: str | None = None) -> Sentence:
        """Recover the unique derivation of ``text``; returns its words and bits.
        Raises :class:`GrammarError` for text the grammar cannot write."""
        words = tokenize(text)
        stack, pos, bits = [symbol or self.start], 0, 0.0
        while stack:
            sym = stack.pop()
            look = words[pos] if pos < len(words) else "<end>"
            if not is_nonterminal(sym):
                if sym != look:
                    raise GrammarError(f"cannot parse {text!r}: expected {sym!r} at word {pos}, found {look!r}")
                pos += 1
                continue
            for k, rhs in enumerate(self.alts[sym]):
                if look in self._alt_first(rhs):
                    break
            else:
                raise GrammarError(f"cannot parse {text!r}: no alternative of {sym} starts with {look!r}")
            bits -= math.log2(self.probs[sym][k])
            stack.extend(reversed(rhs))
        if pos != len(words):
            raise GrammarError(f"cannot parse {text!r}: words left over after a complete sentence: {words[pos:]}")
        return Sentence(tuple(words), bits)

    # ------------------------------------------------------------------ entropy
    def _expected(self, cost_of_choice: dict[str, np.ndarray], cost_of_terminal) -> dict[str, float]:
        """Solve x_A = Σ_k p_k (c_Ak + Σ_{s in rhs_k} [x_s if s is a nonterminal else t(s)])."""
        names = sorted(self.alts)
        idx = {a: i for i, a in enumerate(names)}
        n = len(names)
        M, b = np.zeros((n, n)), np.zeros(n)
        for a in names:
            i = idx[a]
            for k, rhs in enumerate(self.alts[a]):
                p = self.probs[a][k]
                b[i] += p * cost_of_choice[a][k]
                for s in rhs:
                    if is_nonterminal(s):
                        M[i, idx[s]] += p
                    else:
                        b[i] += p * cost_of_terminal(s)
        try:
            x = np.linalg.solve(np.eye(n) - M, b)
        except np.linalg.LinAlgError as e:
            raise GrammarError(f"grammar does not terminate with probability 1 (singular system: {e})") from e
        if not np.all(np.isfinite(x)) or np.any(x < -1e-9):
            raise GrammarError("grammar's expected sentence length is infinite (recursion too likely)")
        return {a: float(x[idx[a]]) for a in names}

    def sentence_entropy(self, symbol: str | None = None) -> float:
        """Exact H(sentence) in bits = expected sum of -log2 p over the choices made."""
        surprisal = {a: -np.log2(p) for a, p in self.probs.items()}
        return self._expected(surprisal, lambda s: 0.0)[symbol or self.start]

    def expected_chars(self, symbol: str | None = None) -> float:
        """Exact E[characters per sentence], newline included (see :func:`text_chars`)."""
        zero = {a: np.zeros(len(p)) for a, p in self.probs.items()}
        return self._expected(zero, lambda s: len(s) + (0 if s in PUNCT else 1))[symbol or self.start]

    def entropy_per_char(self, symbol: str | None = None) -> float:
        """The entropy rate of a corpus of independent sentences, in bits per character."""
        return self.sentence_entropy(symbol) / self.expected_chars(symbol)


def bits_per_char(grammar: Grammar, texts: list[str]) -> float:
    """Held-out estimate of the floor: Σ -log2 p(text) / Σ chars(text), each
    text parsed back by the grammar (so the figure is computed from the text alone)."""
    if not texts:
        raise ValueError("bits_per_char needs at least one text")
    bits = chars = 0.0
    for t in texts:
        s = grammar.parse(t)
        bits += s.bits
        chars += text_chars(s.words)
    return bits / chars
