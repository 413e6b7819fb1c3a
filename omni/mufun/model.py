"""MuFunModel: Whisper encoder + BLP_4i_2x connector + Qwen3, end to end (seed 000).

    audio ──chunks──▶ mel (N, F, 3000) ──Whisper [0, 7, 15, 32], pool 5──▶ (N, 300, 5120)
          ──all chunks in order──▶ (N·300, 5120) ──BLP──▶ (N·300, H)
    prompt ids with -200 markers ──fuse──▶ (T', H) ──Qwen3──▶ logits (T', V)

Training (``forward``: logits and loss) and generation share :meth:`prepare_inputs`.
:meth:`set_stage` applies MuFun's two stages: ``warmup`` trains only the
connector (Whisper and Qwen3 frozen, ``scripts/warmup_qwen.sh``), ``full``
trains everything (``scripts/trainfull_qwen.sh``). Whisper's sinusoidal
positions are never trained (fixed in Whisper and in HF).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from omni import trace
from omni.mufun.audio import pool_and_concat, waveform_to_mels
from omni.mufun.blp import BLPConnector
from omni.mufun.config import MuFunConfig
from omni.mufun.fusion import AUDIO_TOKEN_INDEX, FusionError, fuse, pad_batch
from omni.mufun.qwen3 import Qwen3LM
from omni.mufun.whisper import WhisperEncoder
from omni.generation.generate import GenerationResult, generate
from omni.generation.sampling import SamplingConfig

PHASES = ("warmup", "full")         # MuFun's two training phases (train/mufun.py --stage): connector only, then everything


class MuFunModel(nn.Module):
    def __init__(self, cfg: MuFunConfig, whisper: WhisperEncoder | None = None,
                 connector: BLPConnector | None = None, llm: Qwen3LM | None = None):
        """Builds the three parts from ``cfg`` (random weights), or takes loaded ones
        (see :func:`omni.mufun.loading.load_mufun`), which must match ``cfg``."""
        super().__init__()
        self.cfg = cfg
        for part, part_cfg, name in ((whisper, cfg.whisper, "whisper"), (connector, cfg.connector, "connector"),
                                     (llm, cfg.qwen3, "llm")):
            if part is not None and part.cfg != part_cfg:
                raise ValueError(f"the given {name} was built with {part.cfg}, not the config's {part_cfg}")
        self.whisper = whisper or WhisperEncoder(cfg.whisper)
        self.connector = connector or BLPConnector(cfg.connector)
        self.llm = llm or Qwen3LM(cfg.qwen3, ctx_len=cfg.max_seq_len)

    # -- audio ------------------------------------------------------------------
    @trace.stage("preprocessing")
    def mels(self, wave: torch.Tensor, segment: tuple[float, float] | None = None) -> torch.Tensor:
        """16 kHz waveform (T,) → log-mel of each 30-second chunk (N, F, 3000)."""
        return waveform_to_mels(wave, self.cfg.whisper.n_mels, segment)

    @trace.stage("whisper")
    def audio_features(self, mels: torch.Tensor, chunk_batch: int | None = None) -> torch.Tensor:
        """mel (N, F, 3000) → pooled multi-layer features (N, tokens_per_chunk, 4 · d_model).

        ``chunk_batch`` chunks go through Whisper at a time (None: all at once); the results are the
        same, since chunks never see each other. (The full-size dry run passes 1, so that its folding
        tracer keeps chunk 1's shapes, as in seed 000's table.)
        """
        N = mels.shape[0]
        step = chunk_batch or N
        out = []
        for i in range(0, N, step):
            states = self.whisper(mels[i:i + step].to(self._whisper_dtype()), keep=self.cfg.feature_layers)
            out.append(pool_and_concat(states, self.cfg.feature_layers, self.cfg.pool_stride))
        return torch.cat(out)                                                       # (N, tokens, 4C)

    def embed_audio(self, mels: torch.Tensor, chunk_batch: int | None = None) -> torch.Tensor:
        """One audio's chunks (N, F, 3000) → its embeddings in the decoder's space (N · tokens_per_chunk, H)."""
        feats = self.audio_features(mels, chunk_batch)                              # (N, tokens, 4C)
        feats = feats.reshape(-1, feats.shape[-1])                                  # (N·tokens, 4C)
        trace.record("features.all_chunks", feats, f"all {mels.shape[0]} chunks, in order", stage="whisper")
        return self.connector(feats.to(self.connector.linear1.weight.dtype))        # (N·tokens, H)

    # -- text + audio -------------------------------------------------------------
    def prepare_inputs(self, ids: Sequence[torch.Tensor], audios: Sequence[torch.Tensor],
                       labels: Sequence[torch.Tensor] | None = None, chunk_batch: int | None = None):
        """Fuse a batch of prompts with their audios.

        ids: B id tensors (T_b,) containing -200 markers; audios: one mel tensor
        (N_i, F, 3000) per marker, in reading order across the batch (row 0's
        markers first); labels: B tensors aligned with ids, or None.
        Returns embeds (B, T, H), labels (B, T) or None, lengths (B,).
        """
        counts = [int((row == AUDIO_TOKEN_INDEX).sum()) for row in ids]
        if sum(counts) != len(audios):
            raise FusionError(f"the batch has {sum(counts)} <audio> markers (per row: {counts}) "
                              f"but {len(audios)} audios were given")
        embedded = [self.embed_audio(m, chunk_batch) for m in audios]
        seqs, k = [], 0
        for b, row in enumerate(ids):
            seqs.append(fuse(row, embedded[k:k + counts[b]], self.llm.embed,
                             labels=None if labels is None else labels[b], max_len=self.cfg.max_seq_len))
            k += counts[b]
        return pad_batch(seqs)

    def forward(self, ids: Sequence[torch.Tensor], audios: Sequence[torch.Tensor],
                labels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Training/scoring pass: (logits (B, T, V), mean next-token loss over the labelled positions).

        ``labels[b]`` is ``ids[b]``'s targets, -100 where nothing is learned; each audio marker's label
        spreads over that audio's embeddings. (Generation goes through :meth:`generate`.)
        """
        embeds, fused_labels, _ = self.prepare_inputs(ids, audios, labels)
        return self.llm.logits_and_loss(fused_labels, embeds=embeds)

    @torch.no_grad()
    def generate(self, ids: torch.Tensor, audios: Sequence[torch.Tensor], sampling: SamplingConfig | None = None,
                 eos_id: int | None = None, use_cache: bool = True, **kwargs) -> GenerationResult:
        """Answer one prompt (T,) with -200 markers about its audios (each (N_i, F, 3000))."""
        embeds, _, _ = self.prepare_inputs([ids], audios)
        return generate(self.llm, embeds=embeds, sampling=sampling, eos_id=eos_id, use_cache=use_cache, **kwargs)

    # -- training stages -----------------------------------------------------------
    def set_stage(self, stage: str) -> list[str]:
        """Freeze for MuFun's ``warmup`` (connector only) or ``full`` (everything) stage.

        Returns the names of the parameters left trainable.
        """
        if stage not in PHASES:
            raise ValueError(f"unknown training phase {stage!r}; choose one of {PHASES}")
        full = stage == "full"
        self.whisper.requires_grad_(full)
        self.llm.requires_grad_(full)
        self.connector.requires_grad_(True)
        self.whisper.embed_positions.requires_grad_(False)      # fixed sinusoids, in every stage
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def _whisper_dtype(self) -> torch.dtype:
        return self.whisper.conv1.weight.dtype
