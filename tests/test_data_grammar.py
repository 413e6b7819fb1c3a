"""The grammar behind the synthetic text: sampling, LL(1) parsing, exact entropy."""

import math

import numpy as np
import pytest

from omni.data.grammar import Grammar, GrammarError, bits_per_char, detokenize, text_chars, tokenize
from omni.data.language import world_grammar
from omni.tokenizer import CharVocab


def test_entropy_of_a_finite_grammar_by_hand():
    # two sentences, p = 1/2 each: H = 1 bit; "a." + \n = 3 chars, "b c." + \n = 5 chars
    g = Grammar({"S": [(1, "a ."), (1, "b c .")]})
    assert g.sentence_entropy() == pytest.approx(1.0)
    assert g.expected_chars() == pytest.approx(4.0)
    assert g.entropy_per_char() == pytest.approx(0.25)
    assert bits_per_char(g, ["a.", "b c."]) == pytest.approx(2 / 8)


def test_entropy_of_a_recursive_grammar_by_hand():
    # S → x S (p) | y . (1-p): geometric; H = h(p) / (1-p), E[chars] = 2 p/(1-p) + 3
    p = 0.3
    g = Grammar({"S": [(p, "x S"), (1 - p, "y .")]})
    h = -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    assert g.sentence_entropy() == pytest.approx(h / (1 - p))
    assert g.expected_chars() == pytest.approx(2 * p / (1 - p) + 3)
    s = g.parse("x x y.")
    assert s.bits == pytest.approx(-2 * math.log2(p) - math.log2(1 - p))


def test_uneven_choice_entropy():
    g = Grammar({"S": [(1, "A ."), (3, "B .")], "A": [(1, "a")], "B": [(1, "b"), (1, "c")]})
    # outcomes a (1/4), b (3/8), c (3/8)
    want = -(0.25 * math.log2(0.25) + 2 * 0.375 * math.log2(0.375))
    assert g.sentence_entropy() == pytest.approx(want)


def test_ll1_conflict_is_named():
    g = Grammar({"S": [(1, "the cat ."), (1, "the dog .")]})
    with pytest.raises(GrammarError, match="'the'"):
        g.check_ll1()


def test_parse_rejects_text_outside_the_language():
    g = Grammar({"S": [(1, "a ."), (1, "b c .")]})
    with pytest.raises(GrammarError, match="cannot parse"):
        g.parse("b a.")
    with pytest.raises(GrammarError, match="left over"):
        g.parse("a. a.")


def test_tokenize_inverts_detokenize():
    words = ["where", "is", "anna", "?"]
    text = detokenize(words)
    assert text == "where is anna?"
    assert tokenize(text) == words
    assert text_chars(words) == len(text) + 1


def test_world_grammar_parse_recovers_sample_probability():
    g = world_grammar()                               # runs check_ll1
    rng = np.random.default_rng(0)
    for _ in range(300):
        s = g.sample(rng)
        back = g.parse(s.text)
        assert back.words == s.words
        assert back.bits == pytest.approx(s.bits, abs=1e-9)


def test_world_grammar_held_out_estimate_matches_exact_rate():
    g = world_grammar()
    rng = np.random.default_rng(1)
    texts = [g.sample(rng).text for _ in range(4000)]
    exact = g.entropy_per_char()
    assert 0.3 < exact < 2.0
    assert bits_per_char(g, texts) == pytest.approx(exact, rel=0.03)


def test_world_language_fits_ctc_vocabulary():
    g = world_grammar()
    vocab = CharVocab()
    assert not vocab.unknown_chars(" ".join(g.terminals()))
    assert 250 <= len(g.terminals()) <= 600
