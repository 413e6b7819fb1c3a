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
from dataclasses import dataclass
from pathlib import Path


from omni.data.language import SCENE_COLOURS, SCENE_SHAPES, SCENE_SIZES
from omni.models.contrastive import ContrastiveConfig, ContrastiveModel
from omni.training import ShuffledBatches
from omni.training.contrastive import (ATTRIBUTE_CLASSES, CaptionImages, attribute_accuracy, caption_accuracy,
                                       collate_captions, contrastive_loss, distinct_captions, first_piece_ids,
                                       retrieval_top1)
from omni.training.stage import checked_records, shared_tokenizer, stage_parser, start, train_and_export


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
    run = start("vision", args, ContrastiveConfig, VisionDataConfig)  # preset + command line; seeds, device
    model_cfg, data_cfg, cfg, ctx, run_dir = run

    # =========================================================================
    # 1. Pairs: read the manifests, drop and count images that are missing or fail to decode
    # =========================================================================
    world = Path(args.data or data_cfg.world)
    train_records = checked_records(world, "caption_train.jsonl", "caption", ctx.say, data_cfg.bad_data_threshold)
    val_records = checked_records(world, "caption_val.jsonl", "caption", ctx.say, data_cfg.bad_data_threshold)
    val_records = distinct_captions(val_records, data_cfg.val_images)

    # =========================================================================
    # 2. Tokenizer: the stack's one BPE tokenizer (given, reused, or trained on the world)
    # =========================================================================
    tok = shared_tokenizer(run, world, args.tokenizer, model_cfg.text.vocab_size)

    # =========================================================================
    # 3. Batches: preprocessed images (omni.images) and padded caption ids
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
    # 4. Model, loss (InfoNCE both ways, learnable temperature), evaluation (retrieval top-1)
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

    def report(result) -> str:
        return (f"[vision] validation: image→caption top-1 {100 * result.last_eval['val_top1']:.1f} % among "
                f"{len(val_pairs)}, temperature {result.last_eval['temperature']:.4f}; best {result.best}")

    # =========================================================================
    # 5. Train (omni.training.fit), ship the tokenizer with the exported weights, report
    # =========================================================================
    return train_and_export(run, model, loss_fn, data, evaluate, ship=[run_dir / "tokenizer.model"], report=report)
