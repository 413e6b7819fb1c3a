"""Language-model evaluation: cross-entropy in bits per character next to the world's entropy floor.

    omni eval thinker --ckpt checkpoints/thinker/export --data data/medium --split test

The exported ThinkerLM (and the tokenizer.model shipped with it) scores
``corpus_<split>.txt``: every line as ``BOS pieces EOS``, concatenated, cut
into ``ctx_len`` chunks (:func:`omni.training.lm.bits_per_char`). The summed
cross-entropy in bits is divided by the characters — each line plus its
newline — so the figure does not depend on the tokenizer and sits next to the
floor the synthetic grammar allows (``card.json`` → ``entropy``):

* ``bits_per_char_exact``: the entropy rate of the language, H(sentence) / E[chars];
* ``bits_per_char_held_out[split]``: Σ −log2 p(s) / Σ chars(s) on this split's
  own sentences (what a perfect model would score on exactly these lines).

The goal (issue 6, cpu preset) is "within 15 % of the floor": cross-entropy ≤
1.15 × the split's own floor (the exact rate when the card has no figure for
the split).

Real text (``omni data import text``) has no known entropy: its card says
``"entropy": null``, and the table holds the cross-entropy rows alone — no
floor, no excess, no goal.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from omni.evaluation.metric import Metric
from omni.exports import load_stage
from omni.training.lm import bits_per_char, count_chars, encode_lines
from omni.training.stage import world_file

GOAL_RATIO = 1.15        # within 15 % of the entropy floor


def entropy_floor(data: Path, split: str) -> tuple[float, float | None] | None:
    """(exact entropy rate, the split's held-out floor or None) in bits per character, from card.json;
    None for a folder whose card says its text has no known entropy (an import)."""
    card = json.loads(world_file(data, "card.json").read_text())
    if "entropy" in card and card["entropy"] is None:
        return None
    try:
        e = card["entropy"]
        exact = float(e["bits_per_char_exact"])
    except KeyError as err:
        raise KeyError(f"{data / 'card.json'} has no entropy.{err.args[0]}: is it a synthetic world's card?") from err
    held = e.get("bits_per_char_held_out", {}).get(split)        # absent for train: the card has val and test only
    return exact, None if held is None else float(held)


@torch.no_grad()
def evaluate(ckpt: Path, data: Path, split: str = "test", device: str = "cpu", batch_size: int = 32,
             max_lines: int | None = None) -> list[Metric]:
    """Bits per character of the exported ThinkerLM on ``data/corpus_<split>.txt``, next to the floor."""
    ckpt, data = Path(ckpt), Path(data)
    loaded = load_stage("thinker", ckpt, device)          # the same checks inference makes, tokenizer included
    model, tok = loaded.model, loaded.tokenizer
    corpus = world_file(data, f"corpus_{split}.txt")
    lines = [ln.strip() for ln in corpus.read_text(encoding="utf-8").splitlines() if ln.strip()][:max_lines]
    if not lines:
        raise ValueError(f"{corpus} has no sentences")
    scores = bits_per_char(model, encode_lines(tok, lines), count_chars(lines), model.cfg.ctx_len, batch_size)
    bpc = scores["val_bpc"]

    floor_known = entropy_floor(data, split)
    if floor_known is None:                          # real text: cross-entropy alone
        return [Metric(f"cross-entropy ({split}, {len(lines)} lines; no entropy floor: real text)", bpc, "bits/char"),
                Metric("cross-entropy per token", scores["val_loss"], "nats/token")]
    exact, held = floor_known
    floor = held if held is not None and max_lines is None else exact
    excess = bpc / floor - 1
    goal = f"≤ {100 * (GOAL_RATIO - 1):.0f} %"
    metrics = [
        Metric(f"cross-entropy ({split}, {len(lines)} sentences)", bpc, "bits/char",
               f"≤ {GOAL_RATIO * floor:.3f}", bpc <= GOAL_RATIO * floor),
        Metric("entropy floor of the language (exact)", exact, "bits/char"),
    ]
    if held is not None:
        metrics.append(Metric(f"entropy floor on these {split} sentences", held, "bits/char"))
    metrics += [
        Metric("excess over the floor", 100 * excess, "%", goal, excess <= GOAL_RATIO - 1),
        Metric("cross-entropy per token", scores["val_loss"], "nats/token"),
    ]
    return metrics
