"""Stage 1 — Thinker: next-token pretraining of ThinkerLM on the text corpus.

    python train/thinker.py --config train/configs/thinker/smoke.json [--data data/small | corpus.txt] [--out runs/x]
                            [--tokenizer tok.model] [--device cpu|cuda|mps] [--precision fp32|bf16|fp16]
    omni train thinker --config train/configs/thinker/cpu.json
    torchrun --nproc_per_node 2 train/thinker.py --config train/configs/thinker/gpu.json

``--data`` is a synthetic-world folder (``omni data synth``): training reads
``corpus_train.txt`` and validation ``corpus_val.txt`` (sentences held out
from training), and the shared tokenizer is trained on the world's
``tokenizer_corpus.txt`` (``omni.training.stage.resolve_tokenizer``). A plain
text file (one document per line) works too: a seeded shuffle holds out
``data.val_fraction`` of its lines, and the tokenizer is trained on the rest.

The run directory receives ``tokenizer.model`` (unless ``--tokenizer`` is
given), ``checkpoints/latest.pt`` and ``best.pt``, ``metrics.jsonl``,
``loss.png`` and ``export/`` (model.safetensors, config.json,
tokenizer.model). Rerunning the same command resumes. Validation reports
cross-entropy in bits per character (``val_bpc``).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path


from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.tokenizer import BPETokenizer
from omni.training import ShuffledBatches
from omni.training.lm import (NextTokenLoss, bits_per_char, count_chars, encode_lines, next_token_loss,
                             pack_windows)
from omni.training.stage import shared_tokenizer, stage_parser, start, train_and_export, world_file


@dataclass
class ThinkerDataConfig:
    corpus: str = "data/medium"             # world folder (corpus_{train,val}.txt) or a text file; --data overrides
    val_fraction: float = 0.05              # text file only: share of lines held out (a seeded shuffle)
    eval_batch_size: int = 32

    def __post_init__(self):
        assert 0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}"


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines of a text file."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = stage_parser("thinker", __doc__, data_help="world folder or corpus text file (overrides data.corpus)")
    p.add_argument("--tokenizer", default=None, help="existing SentencePiece .model (default: reuse or train one)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    run = start("thinker", args, ThinkerConfig, ThinkerDataConfig)   # preset + command line; seeds, device
    model_cfg, data_cfg, cfg, ctx, run_dir = run

    # =========================================================================
    # 1. Corpus: a world's train / held-out sentences, or a text file split by a seeded shuffle
    # =========================================================================
    corpus = Path(args.data or data_cfg.corpus)
    if corpus.is_dir():
        train_lines = read_lines(world_file(corpus, "corpus_train.txt"))
        val_lines = read_lines(world_file(corpus, "corpus_val.txt"))
    elif corpus.is_file():
        lines = read_lines(corpus)
        random.Random(cfg.seed).shuffle(lines)
        n_val = max(1, round(data_cfg.val_fraction * len(lines)))
        val_lines, train_lines = lines[:n_val], lines[n_val:]
    else:
        raise FileNotFoundError(f"corpus not found: {corpus} (build a world with `omni data synth --out "
                                f"{corpus} --size small`, or pass --data FILE with one document per line)")
    if not train_lines or not val_lines:
        raise ValueError(f"{corpus}: {len(train_lines)} training and {len(val_lines)} held-out lines; need both")
    ctx.say(f"[data] {corpus}: {len(train_lines):,} training lines, {len(val_lines):,} held out")

    # =========================================================================
    # 2. Tokenizer (the whole stack shares it): given, or in the run directory (resume), or trained —
    #    on the world's tokenizer_corpus.txt, or on a text file's training lines
    # =========================================================================
    tok_path = run_dir / "tokenizer.model"
    if ctx.dist.is_main and not corpus.is_dir() and args.tokenizer is None and not tok_path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        train_text = run_dir / "tokenizer_train.txt"
        train_text.write_text("\n".join(train_lines) + "\n", encoding="utf-8")
        BPETokenizer.train(train_text, tok_path, vocab_size=model_cfg.vocab_size)
        train_text.unlink()
    tok = shared_tokenizer(run, corpus if corpus.is_dir() else None, args.tokenizer, model_cfg.vocab_size)
    ctx.say(f"[tokenizer] {tok_path}: {tok.vocab_size} pieces (model vocabulary {model_cfg.vocab_size})")

    # =========================================================================
    # 3. Token windows: BOS … EOS per line, packed into ctx_len + 1 windows
    # =========================================================================
    train_windows = pack_windows(encode_lines(tok, train_lines), model_cfg.ctx_len)     # (W, ctx_len + 1)
    val_stream = encode_lines(tok, val_lines)                                          # (N,)
    val_chars = count_chars(val_lines)
    data = ShuffledBatches(train_windows, cfg.batch_size, cfg.seed, rank=ctx.dist.rank,
                           world_size=ctx.dist.world_size)
    ctx.say(f"[data] {train_windows.shape[0]:,} training windows of {model_cfg.ctx_len} tokens; "
            f"validation: {val_stream.numel():,} tokens for {val_chars:,} characters")

    # =========================================================================
    # 4. Model, loss, evaluation
    # =========================================================================
    model = ThinkerLM(model_cfg)

    def evaluate(m) -> dict:
        return bits_per_char(m, val_stream, val_chars, model_cfg.ctx_len, data_cfg.eval_batch_size)

    def report(result) -> str:
        return (f"[thinker] validation: {result.last_eval['val_bpc']:.4f} bits per character, "
                f"{result.last_eval['val_loss']:.4f} nats per token; best {result.best}")

    # =========================================================================
    # 5. Train (omni.training.fit) through NextTokenLoss(model), the fused loss DDP wraps; ship the tokenizer
    #    with the exported weights (the Thinker's), report
    # =========================================================================
    return train_and_export(run, model, next_token_loss, data, evaluate, ship=[tok_path], report=report,
                            train_module=NextTokenLoss(model))
