"""The synthetic world's language: its words and the grammar that writes its text.

One vocabulary serves every modality: the LM corpus and the spoken sentences
come from :func:`world_grammar`; scene captions and music captions (in
``scenes.py`` and ``music.py``) use the same words; the text-only dialogues
(:func:`text_dialogue`) ask questions whose answers follow from fixed facts.

The grammar avoids the article "a" (so "a orange" never has to become "an
orange") and is LL(1), so every sentence has exactly one derivation and its
probability — hence the entropy floor — is exact (see ``grammar.py``).
"""

from __future__ import annotations

import numpy as np

from omni.data.grammar import Grammar

# ---------------------------------------------------------------------------
# Words shared with the scenes and the music (the renderers know these names)
# ---------------------------------------------------------------------------
SCENE_COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "black")
SCENE_SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
SCENE_SIZES = ("small", "large")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

# ---------------------------------------------------------------------------
# Words only the text uses
# ---------------------------------------------------------------------------
NAMES = ("anna", "ben", "carla", "dan", "eva", "finn", "greta", "hugo", "ida", "jon", "kira", "leo",
         "mia", "nils", "olga", "paul", "rosa", "sam", "tara", "umar", "vera", "will", "zoe", "max",
         "lena", "tom", "nora", "omar", "ruth", "yuki")
ANIMALS = (("cat", "cats"), ("dog", "dogs"), ("fox", "foxes"), ("bird", "birds"), ("fish", "fish"),
           ("horse", "horses"), ("cow", "cows"), ("sheep", "sheep"), ("goat", "goats"), ("duck", "ducks"),
           ("frog", "frogs"), ("mouse", "mice"), ("rabbit", "rabbits"), ("bear", "bears"), ("wolf", "wolves"),
           ("lion", "lions"), ("tiger", "tigers"), ("monkey", "monkeys"), ("snake", "snakes"), ("pig", "pigs"),
           ("hen", "hens"), ("bee", "bees"), ("deer", "deer"), ("seal", "seals"), ("crab", "crabs"))
THINGS = (("ball", "balls"), ("box", "boxes"), ("cup", "cups"), ("book", "books"), ("hat", "hats"),
          ("kite", "kites"), ("drum", "drums"), ("bell", "bells"), ("lamp", "lamps"), ("chair", "chairs"),
          ("table", "tables"), ("spoon", "spoons"), ("key", "keys"), ("coat", "coats"), ("shoe", "shoes"),
          ("sock", "socks"), ("boat", "boats"), ("car", "cars"), ("train", "trains"), ("bike", "bikes"),
          ("flower", "flowers"), ("leaf", "leaves"), ("stone", "stones"), ("stick", "sticks"), ("shell", "shells"),
          ("cake", "cakes"), ("banana", "bananas"), ("lemon", "lemons"), ("pear", "pears"), ("plum", "plums"),
          ("carrot", "carrots"), ("tomato", "tomatoes"), ("cookie", "cookies"), ("pen", "pens"), ("brush", "brushes"),
          ("basket", "baskets"), ("bottle", "bottles"), ("candle", "candles"), ("clock", "clocks"), ("guitar", "guitars"))
PLACES = ("garden", "kitchen", "forest", "river", "park", "house", "barn", "field", "school", "street",
          "lake", "hill", "beach", "market", "room", "yard", "village", "meadow", "cave", "boat")
PLACE_ADJS = ("old", "quiet", "busy", "dark", "sunny", "little", "green", "wide", "cold", "warm")
SIZES = ("small", "large", "big", "tiny")
COLOURS = SCENE_COLOURS + ("white", "grey", "brown")
MOODS = ("happy", "sad", "hungry", "sleepy", "tired", "busy", "calm", "angry", "brave", "shy",
         "proud", "cold", "warm", "lucky", "quiet")
# transitive verbs: (third person singular, base form)
VERBS_T = (("sees", "see"), ("likes", "like"), ("finds", "find"), ("holds", "hold"), ("carries", "carry"),
           ("wants", "want"), ("follows", "follow"), ("watches", "watch"), ("paints", "paint"), ("counts", "count"),
           ("pushes", "push"), ("pulls", "pull"), ("drops", "drop"), ("hides", "hide"), ("throws", "throw"),
           ("catches", "catch"), ("cleans", "clean"), ("draws", "draw"), ("opens", "open"), ("fixes", "fix"),
           ("buys", "buy"), ("sells", "sell"), ("brings", "bring"), ("takes", "take"), ("hears", "hear"),
           ("loves", "love"), ("needs", "need"), ("moves", "move"), ("kicks", "kick"), ("chases", "chase"))
VERBS_I = ("sleeps", "runs", "jumps", "sings", "swims", "laughs", "waits", "dances", "walks", "sits",
           "hums", "plays", "rests", "smiles", "listens")
ADVERBS = ("quickly", "slowly", "quietly", "loudly", "happily", "today", "again", "outside", "later",
           "now", "here", "together")
PREPS = ("in", "near", "behind", "under", "beside", "inside", "across", "by")


def _alts(words, weight: float = 1.0, tail: str = "") -> list[tuple[float, str]]:
    return [(weight, f"{w} {tail}".strip()) for w in words]


def world_grammar() -> Grammar:
    """The PCFG of the world's text (statements, questions, requests)."""
    sg = lambda pairs: [p[0] for p in pairs]    # noqa: E731
    pl = lambda pairs: [p[1] for p in pairs]    # noqa: E731
    rules: dict[str, list[tuple[float, str]]] = {
        "S": [(6, "DECL"), (3, "QUES"), (1, "IMPER")],
        # statements
        "DECL": [(4, "NAME VP"), (4, "the ANIMAL_NP VP"), (1.5, "there THERE")],
        "THERE": [(1, "is one COUNTED_SG PLACE_TAIL"), (2, "are NUM COUNTED_PL PLACE_TAIL")],
        "PLACE_TAIL": [(3, "PREP PLACE_NP ."), (1, ".")],
        "VP": [(5, "VT OBJ TAIL"), (3, "VI TAIL"), (2, "is PRED"), (0.7, "has OBJ TAIL")],
        "TAIL": [(5, "."), (2, "ADV ."), (2, "PREP PLACE_NP ."), (0.6, "and then VP")],
        "PRED": [(3, "MOOD ."), (1, "very MOOD ."), (2, "PREP PLACE_NP .")],
        # noun phrases
        "ANIMAL_NP": [(1, "SIZE ANIMAL_NP2"), (1, "COLOUR ANIMAL"), (3, "ANIMAL")],
        "ANIMAL_NP2": [(1, "COLOUR ANIMAL"), (2, "ANIMAL")],
        "OBJ": [(4, "the OBJ_NP"), (2, "DET OBJ_NP"), (1.5, "NAME"), (1.5, "NUM COUNTED_PL")],
        "OBJ_NP": [(1, "SIZE OBJ_NP2"), (1.5, "COLOUR NOUN"), (3, "NOUN")],
        "OBJ_NP2": [(1, "COLOUR NOUN"), (2, "NOUN")],
        "NOUN": [(1, "ANIMAL"), (2, "THING")],
        "COUNTED_SG": [(1, "COLOUR NOUN"), (2, "NOUN")],
        "COUNTED_PL": [(1, "COLOUR NOUN_PL"), (2, "NOUN_PL")],
        "NOUN_PL": [(1, "ANIMAL_PL"), (2, "THING_PL")],
        "PLACE_NP": [(3, "the PLACE_REST"), (1, "DET PLACE_REST")],
        "PLACE_REST": [(1, "PLACE_ADJ PLACE"), (3, "PLACE")],
        # questions
        "QUES": [(3, "what WHAT_Q"), (2, "where is SUBJ ?"), (2, "is SUBJ IS_Q"), (2, "does SUBJ VB OBJ ?"),
                 (1, "how many NOUN_PL are there PREP PLACE_NP ?"), (1.5, "who VT OBJ ?")],
        "WHAT_Q": [(2, "colour is the NOUN ?"), (2, "does SUBJ VB ?")],
        "SUBJ": [(1, "NAME"), (1, "the ANIMAL_NP")],
        "IS_Q": [(2, "MOOD ?"), (1, "PREP PLACE_NP ?")],
        # requests
        "IMPER": [(2, "please VB OBJ ."), (1, "look at OBJ ."), (1, "listen to OBJ ."),
                  (1, "let us VB OBJ PLACE_TAIL")],
        # word classes
        "NAME": _alts(NAMES), "ANIMAL": _alts(sg(ANIMALS)), "ANIMAL_PL": _alts(pl(ANIMALS)),
        "THING": _alts(sg(THINGS)), "THING_PL": _alts(pl(THINGS)),
        "PLACE": _alts(PLACES), "PLACE_ADJ": _alts(PLACE_ADJS), "SIZE": _alts(SIZES), "COLOUR": _alts(COLOURS),
        "MOOD": _alts(MOODS), "VT": _alts(sg(VERBS_T)), "VB": _alts(pl(VERBS_T)), "VI": _alts(VERBS_I),
        "ADV": _alts(ADVERBS), "PREP": _alts(PREPS), "NUM": _alts(NUMBER_WORDS[2:]),
        "DET": _alts(("this", "that", "my", "your", "her", "his", "our", "every")),
    }
    g = Grammar(rules)
    g.check_ll1()
    return g


# ---------------------------------------------------------------------------
# Text-only dialogues: questions with answers that follow from fixed facts
# ---------------------------------------------------------------------------
THING_COLOURS = {"banana": "yellow", "lemon": "yellow", "carrot": "orange", "tomato": "red", "leaf": "green",
                 "plum": "purple", "pear": "green", "stone": "grey", "cookie": "brown", "shell": "white"}
ANIMAL_SOUNDS = {"cat": "meow", "dog": "woof", "cow": "moo", "sheep": "baa", "duck": "quack", "pig": "oink",
                 "hen": "cluck", "bee": "buzz", "lion": "roar", "frog": "croak", "horse": "neigh", "goat": "maa"}


def text_dialogue(rng: np.random.Generator) -> tuple[str, str]:
    """One (question, answer) pair about the world's fixed facts."""
    kind = rng.integers(4)
    if kind == 0:
        thing = sorted(THING_COLOURS)[rng.integers(len(THING_COLOURS))]
        return f"what colour is the {thing}?", THING_COLOURS[thing]
    if kind == 1:
        animal = sorted(ANIMAL_SOUNDS)[rng.integers(len(ANIMAL_SOUNDS))]
        return f"what does the {animal} say?", ANIMAL_SOUNDS[animal]
    if kind == 2:
        a = int(rng.integers(0, 6))
        b = int(rng.integers(0, 11 - a))
        if rng.random() < 0.5:
            return f"what is {NUMBER_WORDS[a]} plus {NUMBER_WORDS[b]}?", NUMBER_WORDS[a + b]
        return f"what is {NUMBER_WORDS[a + b]} minus {NUMBER_WORDS[b]}?", NUMBER_WORDS[a]
    n = int(rng.integers(0, 10))
    return f"what comes after {NUMBER_WORDS[n]}?", NUMBER_WORDS[n + 1]
