"""``omni trace mufun``: the full-size MuFun traced on the ``meta`` device (seed 000's tables).

Builds Whisper-large-v3 + BLP_4i_2x + Qwen3-8B-Base (or the ``as-documented``
numbers) on ``meta``, where tensors have shapes and no memory, and pushes a
``--seconds`` song and the seed's prompt through every stage: chunking, log-mel,
Whisper chunk 1 (layers 0, 7, 15, 32), pooling, all chunks, connector, fusion,
Qwen3, and a few generated tokens through the KV cache. Prints seed 000's
"Complete Dimension Tracking Table" and its model-weights table, in seconds.

There is no file in a dry run: steps 0 and 1.1 show the shapes ``load_audio``
would give for a 44.1 kHz stereo file of that length.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import torch

from omni import trace
from omni.audio.io import SAMPLE_RATE
from omni.mufun.config import mufun_config
from omni.mufun.fusion import AUDIO_TOKEN_INDEX, tokenize_with_audio
from omni.mufun.model import MuFunModel
from omni.generation.generate import generate
from omni.generation.sampling import SamplingConfig

SEED_PROMPT = "Listen to <audio> and tell me the genre"
# Seed 000, step 4.1: the ids it prints for SEED_PROMPT (-200 = the <audio> placeholder).
SEED_PROMPT_IDS = [15234, 284, AUDIO_TOKEN_INDEX, 323, 3291, 502, 279, 17779]
SOURCE_RATE, SOURCE_CHANNELS = 44_100, 2     # the seed's file: 44.1 kHz stereo
NEW_TOKENS = 2          # decoded on meta through the KV cache (the seed's answer is ~15; each step is alike)

COMPONENT_NAMES = {
    "mufun": ("Whisper-large-v3 encoder", "Connector BLP_4i_2x", "Qwen3-8B-Base"),
    "as-documented": ("Whisper encoder (80 mels, 3000 positions)", "Connector BLP_4i_2x (→ 3584)",
                      "decoder (3584 wide, 32 layers)"),
}


@dataclass
class WeightRow:
    component: str
    parameters: int

    @property
    def sizes(self) -> dict[str, float]:
        """Bytes of the weights at each precision (4-bit: half a byte per parameter, no overhead)."""
        return {"bf16": 2.0 * self.parameters, "fp16": 2.0 * self.parameters,
                "8-bit": 1.0 * self.parameters, "4-bit": 0.5 * self.parameters}


def weights_table(model: MuFunModel, preset: str) -> list[WeightRow]:
    """Parameter counts of the three components and their total (nothing materialised on meta)."""
    names = COMPONENT_NAMES[preset]
    parts = [model.whisper, model.connector, model.llm]
    rows = [WeightRow(n, sum(p.numel() for p in m.parameters())) for n, m in zip(names, parts)]
    rows.append(WeightRow("Total", sum(r.parameters for r in rows)))
    return rows


def format_weights(rows: list[WeightRow]) -> str:
    out = ["| component | parameters | BF16 | FP16 | 8-bit | 4-bit |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r.sizes
        out.append(f"| {r.component} | {r.parameters:,} | " +
                   " | ".join(f"{s[k] / 1e9:.2f} GB" for k in ("bf16", "fp16", "8-bit", "4-bit")) + " |")
    out.append("\nGB = 10⁹ bytes; weights only (activations are in the table above, in binary units).")
    return "\n".join(out)


@dataclass
class MuFunTrace(trace.Tracer):
    """A Tracer that also carries the weights table, printed after the dimension table."""

    preset: str = "mufun"
    seconds: float = 180.0
    weights: list[WeightRow] = field(default_factory=list)

    def table(self) -> str:
        head = f"## Complete Dimension Tracking Table ({self.seconds:g} s, preset {self.preset})\n\n"
        return head + super().table() + "\n\n## Model weights\n\n" + format_weights(self.weights)

    def to_json(self) -> str:
        return json.dumps({"preset": self.preset, "seconds": self.seconds,
                           "records": [r.to_dict() for r in self.records],
                           "weights": [asdict(r) | {"bytes": r.sizes} for r in self.weights]}, indent=1)


def prompt_ids(prompt: str | None, tokenizer: str | None) -> list[int]:
    """The seed's ids for the seed's prompt; any other prompt needs a local tokenizer folder."""
    if tokenizer is None:
        if prompt not in (None, SEED_PROMPT):
            raise ValueError("a custom prompt needs --tokenizer (a local folder with tokenizer.json); "
                             f"without one the dry run uses the seed's prompt {SEED_PROMPT!r}")
        return list(SEED_PROMPT_IDS)
    from omni.mufun.loading import load_tokenizer

    tok = load_tokenizer(tokenizer)
    return tokenize_with_audio(prompt or SEED_PROMPT, lambda s: tok.encode(s, add_special_tokens=False).ids)


def trace_mufun(seconds: float = 180.0, preset: str = "mufun", prompt: str | None = None,
                tokenizer: str | None = None) -> MuFunTrace:
    """Dry-run MuFun at full size on ``meta``; returns the trace (``.table()``, ``.to_json()``)."""
    seconds = float(seconds)
    if seconds <= 0:
        raise ValueError(f"--seconds must be positive, got {seconds}")
    cfg = mufun_config(preset)
    ids = torch.tensor(prompt_ids(prompt, tokenizer))
    with torch.device("meta"):
        model = MuFunModel(cfg)
    tr = MuFunTrace(fold=True, preset=preset, seconds=seconds, weights=weights_table(model, preset))
    with tr:
        trace.record("audio.raw", (round(seconds * SOURCE_RATE), SOURCE_CHANNELS),
                     f"audio file, {SOURCE_RATE / 1000:g} kHz stereo (no file in a dry run)", stage="input")
        wave = torch.empty(round(seconds * SAMPLE_RATE), device="meta")               # (samples,)
        trace.record("audio.resampled", wave, "mono, resampled to 16 kHz", stage="preprocessing")
        mels = model.mels(wave)                                                        # (N, F, 3000)
        embeds, _, _ = model.prepare_inputs([ids], [mels], chunk_batch=1)            # (1, T, H); chunk by chunk
        model.llm(embeds=embeds)
        with trace.Tracer():      # generation's per-step lines stay out of the seed table
            result = generate(model.llm, embeds=embeds, sampling=SamplingConfig(max_new_tokens=NEW_TOKENS))
        trace.record("generate.tokens", result.tokens, f"{NEW_TOKENS} new tokens through the KV cache (seed: ~15)",
                     stage="output")
    return tr
