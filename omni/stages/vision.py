"""Stage 3 — Vision: ViTTiny trained contrastively against a small text tower on image–caption pairs.

    python train/vision.py --config train/configs/vision/smoke.json --data data/small [--out runs/x]
                           [--tokenizer tok.model] [--device cpu|cuda|mps] [--precision fp32|bf16|fp16]
    omni train vision --config train/configs/vision/cpu.json
    torchrun --nproc_per_node 2 train/vision.py --config train/configs/vision/gpu.json

``--data`` is a synthetic-world folder (``omni data synth``) or any folder with
``caption_train.jsonl`` and ``caption_val.jsonl``. Captions are read with the
stack's one BPE tokenizer (``--tokenizer``, else the run directory's, else one
trained on the world's ``tokenizer_corpus.txt``). The loss is InfoNCE in both
directions with a learnable temperature starting at 0.07 (CLIP's recipe);
validation reports image→caption top-1 among up to 100 distinct val captions
(``val_top1``). With ``model.caption.n_layers > 0`` and ``data.caption_weight > 0``
a caption decoder also writes each caption from the ViT's tokens (CoCa), and
validation adds its teacher-forced token accuracy (``val_caption_acc``) and that
over the shape, colour and size words (``val_caption_shape_acc`` …). The run directory ends with ``export/`` (ContrastiveModel:
config.json + model.safetensors + tokenizer.model). Rerunning resumes.
"""

from __future__ import annotations

import argparse
import functools
import shutil
from dataclasses import dataclass
from pathlib import Path


from omni.data.language import SCENE_COLOURS, SCENE_SHAPES, SCENE_SIZES
from omni.data.quality import load_checked
from omni.models.contrastive import ContrastiveConfig, ContrastiveModel
from omni.tokenizer import BPETokenizer
from omni.training import ShuffledBatches, TrainConfig, fit, load_preset, setup
from omni.training.contrastive import (ATTRIBUTE_CLASSES, CaptionImages, attribute_accuracy, caption_accuracy,
                                       collate_captions, contrastive_loss, distinct_captions, first_piece_ids,
                                       retrieval_top1)
from omni.training.distributed import barrier
from omni.training.stage import command_line_overrides, default_run_dir, resolve_tokenizer, stage_parser, world_file


@dataclass
class VisionDataConfig:
    world: str = "data/medium"               # world folder with caption_{train,val}.jsonl; --data overrides
    bad_data_threshold: float = 0.01         # stop when more than this fraction of images is bad
    val_images: int = 100                    # retrieval among this many val images with distinct captions
    eval_batch_size: int = 50
    hard_negatives: int = 0                  # NegCLIP: per image, k captions with a shape/colour/size word swapped
    caption_weight: float = 0.0              # CoCa: weight of the captioning loss (needs model.caption.n_layers ≥ 1)
    attribute_weight: float = 0.0            # weight of the per-column scene-attribute loss (needs model.attribute_*)

    def __post_init__(self):
        assert 0 <= self.bad_data_threshold < 1, f"bad_data_threshold must be in [0, 1), got {self.bad_data_threshold}"
        assert self.val_images >= 2, f"val_images must be ≥ 2 for retrieval, got {self.val_images}"
        assert self.hard_negatives >= 0, f"hard_negatives must be ≥ 0, got {self.hard_negatives}"
        assert self.caption_weight >= 0, f"caption_weight must be ≥ 0, got {self.caption_weight}"
        assert self.attribute_weight >= 0, f"attribute_weight must be ≥ 0, got {self.attribute_weight}"


def parse_args(argv=None) -> argparse.Namespace:
    p = stage_parser("vision", __doc__, data_help="world folder (overrides data.world)")
    p.add_argument("--tokenizer", default=None, help="the Thinker's SentencePiece .model (default: reuse or train)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    # =========================================================================
    # 1. Configuration: one preset file, three sections; the command line overrides a few keys
    # =========================================================================
    preset = load_preset(args.config, {"model": ContrastiveConfig, "data": VisionDataConfig, "train": TrainConfig})
    model_cfg: ContrastiveConfig = preset["model"]
    data_cfg: VisionDataConfig = preset["data"]
    cfg: TrainConfig = command_line_overrides(preset["train"], args)
    run_dir = default_run_dir(args, "vision")
    ctx = setup(cfg)                                   # seeds, joins torchrun's group, picks the device

    # =========================================================================
    # 2. Pairs: read the manifests, drop and count images that are missing or fail to decode
    # =========================================================================
    world = Path(args.data or data_cfg.world)
    train_records, train_report = load_checked(world_file(world, "caption_train.jsonl"), "caption",
                                               threshold=data_cfg.bad_data_threshold)
    val_records, val_report = load_checked(world_file(world, "caption_val.jsonl"), "caption",
                                           threshold=data_cfg.bad_data_threshold)
    ctx.say(train_report.summary())
    ctx.say(val_report.summary())
    val_records = distinct_captions(val_records, data_cfg.val_images)

    # =========================================================================
    # 3. Tokenizer: the stack's one BPE tokenizer (given, reused, or trained on the world)
    # =========================================================================
    if ctx.dist.is_main:
        resolve_tokenizer(run_dir, world, args.tokenizer, vocab_size=model_cfg.text.vocab_size, say=ctx.say)
    barrier(ctx.dist)                                  # other ranks wait for rank 0's tokenizer
    tok = BPETokenizer(run_dir / "tokenizer.model")

    # =========================================================================
    # 4. Batches: preprocessed images (omni.images) and padded caption ids
    # =========================================================================
    size = model_cfg.vision.image_size
    attributes = data_cfg.attribute_weight > 0
    if attributes and (model_cfg.attribute_slots, list(model_cfg.attribute_classes)) != (3, ATTRIBUTE_CLASSES):
        raise ValueError(f"{args.config}: data.attribute_weight needs model.attribute_slots 3 and "
                         f"model.attribute_classes {ATTRIBUTE_CLASSES} (shape, colour, size + none per column), "
                         f"got {model_cfg.attribute_slots} and {model_cfg.attribute_classes}")
    train_pairs = CaptionImages(train_records, tok, model_cfg.text.ctx_len, size,
                                hard_negatives=data_cfg.hard_negatives, seed=cfg.seed, attributes=attributes)
    val_pairs = CaptionImages(val_records, tok, model_cfg.text.ctx_len, size, attributes=attributes)
    data = ShuffledBatches(train_pairs, cfg.batch_size, cfg.seed, rank=ctx.dist.rank,
                           world_size=ctx.dist.world_size, collate_fn=collate_captions)
    ctx.say(f"[data] {world}: {len(train_pairs):,} training pairs ({train_pairs.n_distinct:,} distinct captions); "
            f"retrieval among {len(val_pairs)} val images with distinct captions"
            + (f"; {data_cfg.hard_negatives} hard-negative captions per image" if data_cfg.hard_negatives else ""))

    # =========================================================================
    # 5. Model, loss (InfoNCE both ways, learnable temperature), evaluation (retrieval top-1)
    # =========================================================================
    model = ContrastiveModel(model_cfg)
    if data_cfg.caption_weight and model.caption_decoder is None:
        raise ValueError(f"{args.config}: data.caption_weight is {data_cfg.caption_weight} but model.caption.n_layers "
                         f"is 0 (no caption decoder to train)")
    if data_cfg.caption_weight:
        ctx.say(f"[model] caption decoder: {model_cfg.caption.n_layers} layers on the 1 + "
                f"{model_cfg.vision.n_patches} image tokens, loss weight {data_cfg.caption_weight} (CoCa)")
    if attributes:
        ctx.say(f"[model] attribute head: shape, colour and size of each column from the 1 + "
                f"{model_cfg.vision.n_patches} image tokens, loss weight {data_cfg.attribute_weight}")
    loss_fn = functools.partial(contrastive_loss, caption_weight=data_cfg.caption_weight,
                                attribute_weight=data_cfg.attribute_weight)
    word_groups = {"shape": first_piece_ids(tok, SCENE_SHAPES), "colour": first_piece_ids(tok, SCENE_COLOURS),
                   "size": first_piece_ids(tok, SCENE_SIZES)}       # the words a captioner must see to write

    def evaluate(m) -> dict:
        scores = retrieval_top1(m, val_pairs, data_cfg.eval_batch_size)
        out = {"val_loss": scores["val_loss"], "val_top1": scores["i2t_top1"], "val_t2i_top1": scores["t2i_top1"],
               "temperature": float(1 / m.scale())}
        if m.caption_decoder is not None:
            acc = caption_accuracy(m, val_pairs, data_cfg.eval_batch_size, word_groups)
            out.update({"val_caption_acc" if k == "all" else f"val_caption_{k}_acc": v for k, v in acc.items()})
        if attributes:
            out.update({f"val_attr_{k}_acc": v for k, v in attribute_accuracy(m, val_pairs, data_cfg.eval_batch_size).items()})
        return out

    # =========================================================================
    # 6. Train (guards, checkpoints, resume, metrics: omni.training.fit)
    # =========================================================================
    result = fit(ctx, model, loss_fn, data, run_dir=run_dir, model_config=model_cfg, eval_fn=evaluate)

    # =========================================================================
    # 7. Ship the tokenizer with the exported weights; report
    # =========================================================================
    if ctx.dist.is_main:
        shutil.copyfile(run_dir / "tokenizer.model", run_dir / "export" / "tokenizer.model")
        if result.last_eval is not None:
            ctx.say(f"[vision] validation: image→caption top-1 {100 * result.last_eval['val_top1']:.1f} % among "
                    f"{len(val_pairs)}, temperature {result.last_eval['temperature']:.4f}; best {result.best}")
    ctx.close()
    return 0
