"""MuFun's two-stage recipe (seed 003): warm up the connector, then fine-tune everything, on music QA.

    python train/mufun.py --config train/configs/mufun/smoke.json --stage warmup --data data/small --from-scratch
    python train/mufun.py --config train/configs/mufun/smoke.json --stage full --data data/small \\
                          --init runs/mufun-warmup-smoke/export
    omni train mufun --config train/configs/mufun/gpu.json --stage warmup \\
                     --whisper ckpt/whisper-large-v3 --qwen ckpt/Qwen3-8B-Base --hf-tokenizer ckpt/Qwen3-8B-Base

Stage ``warmup``: Whisper and Qwen3 frozen, only the BLP connector trains
(``MuFunModel.set_stage``). Stage ``full``: everything trains (Whisper's
sinusoidal positions excepted). ``full`` starts from the warm-up's export
(``--init``). The preset's ``stages`` section holds what each stage changes in
``train`` (MuFun's warm-up uses a larger learning rate than its fine-tuning).

Weights: ``--init DIR`` (an export of this script: all three parts), or real
checkpoints ``--whisper DIR --qwen DIR [--connector FILE]`` loaded strictly from
local Hugging Face folders (never downloaded), or ``--from-scratch`` for
random parts (the tiny configuration's demo), announced part by part. The
connector may start new in ``warmup``: that is what the warm-up is for.

Text: the shared BPE tokenizer stands in for Qwen's (omni/mufun/qa.py);
``--hf-tokenizer DIR`` reads a real Qwen ``tokenizer.json`` instead. The
export (MuFunModel: config.json, model.safetensors) ships the tokenizer.
Held-out accuracy: ``omni eval mufun``.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path


import torch

from omni.mufun.config import MuFunConfig
from omni.mufun.model import PHASES, MuFunModel
from omni.mufun.qa import MusicQADataset, QwenTokenizer, SharedBPE, collate_qa
from omni.nn.cross_entropy import IGNORE_INDEX
from omni.training import ShuffledBatches, TrainConfig, load_exported, override
from omni.training.config import config_diff
from omni.training.stage import checked_records, resolve_tokenizer, stage_parser, start, train_and_export, world_file


@dataclass
class MuFunDataConfig:
    world: str = "data/medium"           # synthetic-world folder (its audio_qa_*.jsonl); --data overrides
    val_questions: int = 64              # held-out questions scored for val_loss (the first ones of audio_qa_val)
    eval_batch_size: int = 8


@dataclass
class MuFunStagesConfig:
    """Per stage, the ``train`` keys that differ from the preset's ``train`` section."""
    warmup: dict = field(default_factory=dict)
    full: dict = field(default_factory=dict)

    def __post_init__(self):
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        for stage in PHASES:
            unknown = sorted(set(getattr(self, stage)) - known)
            if unknown:
                raise TypeError(f"stages.{stage} has keys {unknown} that TrainConfig does not know")


def parse_args(argv=None) -> argparse.Namespace:
    p = stage_parser("mufun", __doc__, data_help="synthetic-world folder (overrides data.world)")
    p.add_argument("--stage", required=True, choices=PHASES, help="warmup: connector only; full: everything")
    p.add_argument("--init", default=None, help="export of an earlier run (e.g. the warm-up's): all three parts")
    p.add_argument("--whisper", default=None, help="local Whisper folder (HF layout: config.json + safetensors)")
    p.add_argument("--qwen", default=None, help="local Qwen3 folder (HF layout)")
    p.add_argument("--connector", default=None, help="connector safetensors file (bare or MuFun's prefix)")
    p.add_argument("--from-scratch", action="store_true", help="parts given by no flag start random (announced)")
    p.add_argument("--tokenizer", default=None, help="shared BPE .model (default: --init's, else trained)")
    p.add_argument("--hf-tokenizer", default=None, help="folder with a Qwen tokenizer.json (instead of the BPE)")
    return p.parse_args(argv)


def build_model(args, cfg: MuFunConfig, say) -> MuFunModel:
    """The model from --init, or from real checkpoints and/or random parts (each one announced)."""
    if args.init is not None:
        if args.whisper or args.qwen or args.connector:
            raise ValueError("--init provides all three parts; do not combine it with --whisper/--qwen/--connector")
        model = load_exported(args.init, MuFunModel, MuFunConfig)
        if model.cfg != cfg:
            raise ValueError(f"--init {args.init} holds another MuFunConfig than the preset's model section: "
                             f"{config_diff(model.cfg.to_dict(), cfg.to_dict())}")
        say(f"[init] whisper, connector, llm ← {Path(args.init) / 'model.safetensors'}")
        return model
    from omni.mufun.loading import load_connector, load_qwen3, load_whisper

    fp32 = torch.float32                 # master weights in fp32 (bf16 checkpoints are upcast); autocast does the rest
    whisper = load_whisper(args.whisper, dtype=fp32) if args.whisper else None
    llm = load_qwen3(args.qwen, dtype=fp32, ctx_len=cfg.max_seq_len) if args.qwen else None
    connector = load_connector(args.connector, cfg.connector, dtype=fp32) if args.connector else None
    for name, part, flag in (("whisper", whisper, args.whisper), ("llm", llm, args.qwen),
                             ("connector", connector, args.connector)):
        if part is not None:
            say(f"[init] {name:<9} ← {flag}")
        elif name == "connector" and args.stage == "warmup":
            say("[init] connector new: random weights, which the warm-up is there to train")
        elif args.from_scratch:
            say(f"[init] {name:<9} !! FROM SCRATCH: random weights (--from-scratch) !!")
        else:
            option = {"whisper": "--whisper DIR", "llm": "--qwen DIR", "connector": "--connector FILE"}[name]
            raise FileNotFoundError(f"nothing to start the {name} from: pass {option}, --init EXPORT (e.g. the "
                                    f"warm-up's), or --from-scratch to start it from random weights")
    return MuFunModel(cfg, whisper=whisper, connector=connector, llm=llm)   # checks each part's config


def main(argv=None) -> int:
    args = parse_args(argv)
    run = start(f"mufun-{args.stage}", args, MuFunConfig, MuFunDataConfig, sections={"stages": MuFunStagesConfig},
                train=lambda preset: override(preset["train"], **getattr(preset["stages"], args.stage)))
    model_cfg, data_cfg, cfg, ctx, run_dir = run       # train: the preset's, as its stages section changes it
    world = Path(args.data or data_cfg.world)

    # =========================================================================
    # 1. Model and stage: what starts where, what trains (a missing source stops the run here)
    # =========================================================================
    model = build_model(args, model_cfg, ctx.say)
    trainable = model.set_stage(args.stage)
    parts = sorted({name.split(".")[0] for name in trainable})
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ctx.say(f"[stage] {args.stage}: training {', '.join(parts)} ({n_train:,} of "
            f"{sum(p.numel() for p in model.parameters()):,} parameters); frozen: "
            f"{', '.join(sorted({'whisper', 'connector', 'llm'} - set(parts))) or 'nothing'}")

    # =========================================================================
    # 2. Tokenizer: a Qwen tokenizer.json if given, else the shared BPE (stand-in for Qwen's)
    # =========================================================================
    init_tok = Path(args.init) / "tokenizer.model" if args.init else None
    if args.hf_tokenizer:
        tok = QwenTokenizer(args.hf_tokenizer)
    else:
        given = args.tokenizer or (init_tok if init_tok is not None and init_tok.is_file() else None)
        resolve_tokenizer(run_dir, world, given=given, vocab_size=model_cfg.qwen3.vocab_size, say=ctx.say)
        tok = SharedBPE(run_dir / "tokenizer.model")
    if tok.vocab_size > model_cfg.qwen3.vocab_size:
        raise ValueError(f"{tok.describe()} has more pieces than the decoder's vocabulary "
                         f"({model_cfg.qwen3.vocab_size}, model.qwen3.vocab_size in {args.config})")
    ctx.say(f"[tokenizer] {tok.describe()}")

    # =========================================================================
    # 3. Music QA: checked records (bad data counted); audio decoded per batch
    # =========================================================================
    splits = {}
    for split in ("train", "val"):
        records = checked_records(world, f"audio_qa_{split}.jsonl", "audio_qa", ctx.say, prefix="[data] ")
        if not records:
            raise ValueError(f"{world_file(world, f'audio_qa_{split}.jsonl')} holds no usable questions")
        splits[split] = records
    n_mels = model_cfg.whisper.n_mels
    train_set = MusicQADataset(splits["train"], tok, n_mels)
    val_set = MusicQADataset(splits["val"][:data_cfg.val_questions], tok, n_mels)
    val_examples = collate_qa([val_set[i] for i in range(len(val_set))])       # decoded once
    data = ShuffledBatches(train_set, cfg.batch_size, cfg.seed, rank=ctx.dist.rank,
                           world_size=ctx.dist.world_size, collate_fn=collate_qa)

    # =========================================================================
    # 4. Loss (MuFunModel's: -100 on audio and prompt) and validation loss
    # =========================================================================
    def loss_fn(m, batch):
        _, loss = m(batch["ids"], batch["audios"], batch["labels"])              # -100 on audio and prompt
        n = sum(int((lab[1:] != IGNORE_INDEX).sum()) for lab in batch["labels"])
        return loss, {"tokens": n, "samples": len(batch["ids"])}

    @torch.no_grad()
    def evaluate(m) -> dict:
        total, count, B = 0.0, 0, data_cfg.eval_batch_size
        for i in range(0, len(val_examples["ids"]), B):
            batch = {k: [t.to(ctx.device) for t in v[i:i + B]] for k, v in val_examples.items()}
            loss, counts = loss_fn(m, batch)
            total, count = total + float(loss) * counts["tokens"], count + counts["tokens"]
        return {"val_loss": total / count}

    def report(result) -> str:
        return (f"[mufun] {args.stage}: validation {result.last_eval['val_loss']:.4f} nats per answer token; next: "
                + (f"--stage full --init {run_dir / 'export'}" if args.stage == "warmup"
                   else f"omni eval mufun --ckpt {run_dir / 'export'}"))

    # =========================================================================
    # 5. Train (omni.training.fit), ship the tokenizer with the exported weights, report
    # =========================================================================
    shipped = Path(args.hf_tokenizer) / "tokenizer.json" if args.hf_tokenizer else run_dir / "tokenizer.model"
    return train_and_export(run, model, loss_fn, data, evaluate, ship=[shipped], report=report)
