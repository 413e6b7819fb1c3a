"""Stage 6 — omni_sft: OmniModel fine-tuned on the world's mixed image/audio/text dialogues.

    python train/omni_sft.py --config train/configs/omni_sft/smoke.json --data data/small --from-scratch
    python train/omni_sft.py --config train/configs/omni_sft/cpu.json      # after the thinker, audio, vision stages
    omni train omni_sft --config train/configs/omni_sft/gpu.json --thinker runs/thinker-gpu/export

The parts start from the earlier stages' exports: the Thinker from
``checkpoints/thinker/export`` (its tokenizer too), the audio encoder from the
ASR export's ``encoder``, ViTTiny from the contrastive export's ``vision``
(``--thinker/--audio/--vision DIR`` override). A missing export is an error;
``--from-scratch`` starts every part not given by a flag untrained, and the run
says so. proj_v and proj_a always start new. The loss covers only the last
answer of each dialogue (omni/data/dialogue.py has the template). The run
directory ends with ``export/`` (OmniModel: config.json, model.safetensors,
tokenizer.model). Held-out QA accuracy: ``omni eval omni_sft``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path


from omni.data.dialogue import LEARN_TURNS
from omni.models.omni_model import OmniConfig, OmniModel
from omni.training import ShuffledBatches
from omni.checkpoint import export_dir
from omni.training.sft import (LOSS_WEIGHTINGS, DialogueDataset, collate_dialogues, fit_to_context,
                               pack_questions, sft_loss, validation_loss)
from omni.training.stage import checked_records, resolve_tokenizer, stage_parser, start, train_and_export, world_file
from omni.training.warm_start import PartSource, load_part

PARTS = ("vision", "audio_encoder", "proj_v", "proj_a", "thinker")     # OmniModel's children
SOURCES = {   # part → (stage export it starts from, prefix, config section, config keys that shape no weight)
    "thinker": PartSource("thinker", "thinker", prefix="", config_key=None, may_differ=("ctx_len",)),
    "audio_encoder": PartSource("audio_encoder", "audio", prefix="encoder.", config_key="encoder"),
    "vision": PartSource("vision", "vision", prefix="vision.", config_key="vision"),
}


@dataclass
class OmniSftDataConfig:
    world: str = "data/medium"           # synthetic-world folder; --data overrides
    val_dialogues: int = 64              # held-out dialogues scored for val_loss (the first ones of sft_val)
    eval_batch_size: int = 16
    freeze: list[str] = field(default_factory=list)   # parts kept fixed, e.g. ["vision", "audio_encoder"]
    loss_weighting: str = "token"        # "token": mean over answer tokens; "dialogue": each dialogue counts once
    learn_turns: str = "last"            # "last": the last answer (the world's rule); "all": every answer
    questions_per_dialogue: int = 1       # > 1: one-question dialogues about one image/clip packed together

    def __post_init__(self):
        unknown = [p for p in self.freeze if p not in PARTS]
        if unknown:
            raise ValueError(f"freeze names unknown parts {unknown}; OmniModel's parts are {PARTS}")
        assert self.val_dialogues >= 1, f"val_dialogues must be ≥ 1, got {self.val_dialogues}"
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {LOSS_WEIGHTINGS}, got {self.loss_weighting!r}")
        if self.learn_turns not in LEARN_TURNS:
            raise ValueError(f"learn_turns must be one of {LEARN_TURNS}, got {self.learn_turns!r}")
        if self.questions_per_dialogue < 1:
            raise ValueError(f"questions_per_dialogue must be ≥ 1, got {self.questions_per_dialogue}")
        if self.questions_per_dialogue > 1 and self.learn_turns != "all":
            raise ValueError(f"questions_per_dialogue {self.questions_per_dialogue} packs questions whose "
                             f"answers would go unlearned with learn_turns 'last'; set learn_turns to 'all'")


def parse_args(argv=None) -> argparse.Namespace:
    p = stage_parser("omni_sft", __doc__, data_help="synthetic-world folder (overrides data.world)")
    p.add_argument("--thinker", default=None, help=f"thinker export (default {export_dir('thinker')})")
    p.add_argument("--audio", default=None, help=f"ASR export; its encoder starts the audio encoder "
                                                 f"(default {export_dir('audio')})")
    p.add_argument("--vision", default=None, help=f"contrastive export; its vision tower starts ViTTiny "
                                                  f"(default {export_dir('vision')})")
    p.add_argument("--from-scratch", action="store_true",
                   help="start every part not given by --thinker/--audio/--vision untrained (announced)")
    p.add_argument("--tokenizer", default=None, help="SentencePiece .model (default: the thinker export's)")
    p.add_argument("--freeze", default=None, help=f"comma-separated parts to keep fixed (overrides data.freeze); "
                                                  f"parts: {','.join(PARTS)}; '' freezes nothing")
    return p.parse_args(argv)


def part_exports(args) -> dict[str, Path | None]:
    """Where each pre-trained part comes from: a flag, the default export, or (--from-scratch) nowhere."""
    given = {"thinker": args.thinker, "audio_encoder": args.audio, "vision": args.vision}
    out = {}
    for part, flag in given.items():
        stage = SOURCES[part].stage
        if flag is not None:
            if not Path(flag).is_dir():
                raise FileNotFoundError(f"--{stage} {flag}: no such export folder")
            out[part] = Path(flag)
        elif args.from_scratch:
            out[part] = None
        elif export_dir(stage).is_dir():
            out[part] = export_dir(stage)
        else:
            raise FileNotFoundError(
                f"no {stage} export at {export_dir(stage)} to start {part} from: train that stage first "
                f"(omni train {stage}), pass --{stage} DIR, or pass --from-scratch to start it untrained")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    sources = part_exports(args)                       # before anything starts: a missing export stops here
    run = start("omni_sft", args, OmniConfig, OmniSftDataConfig)       # preset + command line; seeds, device
    model_cfg, data_cfg, cfg, ctx, run_dir = run
    if args.freeze is not None:
        data_cfg = OmniSftDataConfig(**{**vars(data_cfg), "freeze": [p for p in args.freeze.split(",") if p]})
    if ctx.dist.world_size > 1:
        raise RuntimeError("omni_sft runs in one process: a batch without an image (or audio) leaves ViTTiny "
                           "(or the audio encoder) unused, which DistributedDataParallel refuses")
    world = Path(args.data or data_cfg.world)

    # =========================================================================
    # 1. Tokenizer: the Thinker's (shipped with its export), else given, else trained on the world
    # =========================================================================
    given = args.tokenizer
    if sources["thinker"] is not None:
        shipped = sources["thinker"] / "tokenizer.model"
        if not shipped.is_file():
            raise FileNotFoundError(f"{sources['thinker']} has no tokenizer.model: the Thinker's embeddings "
                                    f"only make sense with the tokenizer it was trained with")
        if given is not None and Path(given).read_bytes() != shipped.read_bytes():
            raise ValueError(f"--tokenizer {given} differs from the thinker export's {shipped}")
        given = shipped
    tok = resolve_tokenizer(run_dir, world, given=given, vocab_size=model_cfg.thinker.vocab_size, say=ctx.say)

    # =========================================================================
    # 2. Dialogues: checked (bad data counted), then only those that fit the context
    # =========================================================================
    splits = {}
    for split in ("train", "val"):
        records = checked_records(world, f"sft_{split}.jsonl", "sft", ctx.say, prefix="[data] ")
        if split == "train" and data_cfg.questions_per_dialogue > 1:
            records, n_packed = pack_questions(records, data_cfg.questions_per_dialogue, seed=cfg.seed)
            ctx.say(f"[data] sft_train: {n_packed:,} one-question image/clip dialogues packed up to "
                    f"{data_cfg.questions_per_dialogue} per medium → {len(records):,} dialogues")
        kept, lengths = fit_to_context(records, tok, model_cfg)
        ctx.say(f"[data] sft_{split}: {lengths.summary()}")
        if not kept:
            raise ValueError(f"{world_file(world, f'sft_{split}.jsonl')}: no dialogue fits ctx_len "
                             f"{model_cfg.thinker.ctx_len}")
        splits[split] = kept
    train_set = DialogueDataset(splits["train"], tok, model_cfg.vision.image_size, learn=data_cfg.learn_turns)
    val_set = DialogueDataset(splits["val"][:data_cfg.val_dialogues], tok, model_cfg.vision.image_size)
    val_examples = [val_set[i] for i in range(len(val_set))]             # decoded once, scored at every eval
    data = ShuffledBatches(train_set, cfg.batch_size, cfg.seed, collate_fn=collate_dialogues)

    # =========================================================================
    # 3. Model: pre-trained parts from the earlier stages' exports (strict), the rest new — said loudly
    # =========================================================================
    model = OmniModel(model_cfg)
    for part, export in sources.items():
        if export is None:
            ctx.say(f"[init] {part:<13} !! FROM SCRATCH: random weights (--from-scratch) !!")
            continue
        part_cfg = {"thinker": model_cfg.thinker, "audio_encoder": model_cfg.audio, "vision": model_cfg.vision}[part]
        weights, differ = load_part(getattr(model, part), export, SOURCES[part], part_cfg)
        ctx.say(f"[init] {part:<13} ← {weights}" + (f" ({'; '.join(differ)}: RoPE has no position table)"
                                                     if differ else ""))
    ctx.say("[init] proj_v, proj_a  new (no earlier stage trains the projectors)")
    for part in data_cfg.freeze:
        if part in sources and sources[part] is None:
            raise ValueError(f"freeze asks to keep {part} fixed, but it starts from scratch: it would stay random")
        getattr(model, part).requires_grad_(False)
    if data_cfg.freeze:
        ctx.say(f"[init] frozen: {', '.join(data_cfg.freeze)}")

    # =========================================================================
    # 4. Loss (the answers' tokens), evaluation (held-out loss)
    # =========================================================================
    def loss_fn(m, batch):
        return sft_loss(m, batch, weighting=data_cfg.loss_weighting)

    def evaluate(m) -> dict:
        return validation_loss(m, val_examples, data_cfg.eval_batch_size)

    def report(result) -> str:
        return (f"[omni_sft] validation: {result.last_eval['val_loss']:.4f} nats per answer token; "
                f"best {result.best}; QA accuracy: omni eval omni_sft --ckpt {run_dir / 'export'}")

    # =========================================================================
    # 5. Train (omni.training.fit), ship the tokenizer with the exported weights, report
    # =========================================================================
    return train_and_export(run, model, loss_fn, data, evaluate, ship=[run_dir / "tokenizer.model"], report=report)
