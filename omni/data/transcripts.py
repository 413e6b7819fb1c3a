"""Transcripts → the 98-symbol CTC vocabulary, every change named and counted.

``omni data import`` passes every ASR/TTS transcript through
:func:`normalize_transcript`, which returns the new text and the names of the
changes it made; the importer counts them in the card (``transcripts.changes``),
so a corpus is never rewritten silently. The steps, in order:

1. **Unicode folded** (:data:`FOLDED`): NFKC (ligatures, full-width forms,
   non-breaking spaces), then typographic punctuation to its ASCII form
   (“ ” „ → ``"``; ‘ ‚ → ``'``; – → ``-``; … → ``...``), then accents stripped
   (``café`` → ``cafe``, via NFKD without combining marks). The two
   typographic marks the CTC vocabulary holds, ’ and —, are kept.
2. **Lower-cased** (:data:`LOWERED`): LibriSpeech is written in capitals and
   LJSpeech in sentence case; case cannot be heard, and the synthetic world
   and the CER normaliser (:mod:`omni.cer`) read lower case.
3. **Whitespace collapsed** (:data:`SPACES`): tabs, newlines and runs of spaces
   become one space; the ends are stripped.

Two things are *not* changed:

* **Digits** stay: they are in the vocabulary, and "1984" may be spoken
  "nineteen eighty-four" or "one thousand nine hundred and eighty-four" —
  spelling it out would invent a label. Transcripts holding digits are counted
  (:data:`DIGITS`) so the card shows how many there are; normalise them
  upstream if the number matters (LJSpeech ships a normalised column, which the
  importer reads).
* **Punctuation** in the vocabulary (printable ASCII) stays, as the world's
  transcripts keep theirs; the CER ignores it.

A character still outside the vocabulary after these steps (a CJK character,
an emoji) makes the clip bad data: ``omni.data.quality.check_speech`` counts it
under "characters outside the CTC vocabulary" and the importer lists it in the card.
"""

from __future__ import annotations

import re
import unicodedata

from omni.tokenizer import CTC_CHARS

FOLDED = "unicode folded to ASCII (quotes, dashes, accents, ligatures)"
LOWERED = "lower-cased"
SPACES = "whitespace collapsed or stripped"
DIGITS = "digits kept (spoken form unknown)"      # counted, not a change

_KEEP = set(CTC_CHARS)
_TYPOGRAPHIC = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                              "\u2018": "'", "\u201a": "'", "\u2032": "'",
                              "\u2013": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-",
                              "\u2026": "..."})
_SPACE_RUNS = re.compile(r"\s+")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC)
    out = []
    for c in text:
        if c in _KEEP:
            out.append(c)
        else:                                        # strip accents; what is left unknown stays for the check
            base = "".join(d for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d))
            out.append(base or c)
    return "".join(out)


def normalize_transcript(text: str) -> tuple[str, list[str]]:
    """(normalised text, names of the steps that changed it, plus :data:`DIGITS` if it holds digits)."""
    changes = []
    folded = _fold(text)
    if folded != text:
        changes.append(FOLDED)
    lowered = folded.lower()
    if lowered != folded:
        changes.append(LOWERED)
    spaced = _SPACE_RUNS.sub(" ", lowered).strip()
    if spaced != lowered:
        changes.append(SPACES)
    if any(c.isdigit() for c in spaced):
        changes.append(DIGITS)
    return spaced, changes
