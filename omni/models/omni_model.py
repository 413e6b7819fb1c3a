"""OmniModel: the encoders, their projectors and the Thinker, fused into one sequence (seed 004, Parts 2–4).

    pixels (B, 3, 224, 224) ──ViTTiny──▶ CLS (B, 1, 128) ──proj_v──▶ (B, 1, 256)     1 image token
    mel (B, 100, 128) ──AudioEncoderTiny──▶ (B, 25, 192) ──proj_a──▶ (B, 25, 256)     25 audio tokens
    ids (B, 9) ──thinker.embed──▶ (B, 9, 256)                                        text tokens
    ──concatenate [image, audio, text]──▶ (B, 35, 256) ──ThinkerLM──▶ logits (B, 35, 5000)

One module owns every part; training and inference use it and never rebuild
the projectors. Two ways to lay out the sequence:

* **Concatenation** (the seed's): :meth:`OmniModel.fuse` puts the image token(s)
  first, then the audio tokens, then the text: 1 + 8 = 9, 25 + 5 = 30,
  1 + 25 + 9 = 35 tokens.
* **Placeholders** (as MuFun does with ``<audio>``): :meth:`OmniModel.fuse_prompt`
  splits the prompt on ``<image>`` / ``<audio>`` markers, tokenizes the text
  pieces (the tokenizer knows no marker pieces) and puts each medium's
  embeddings where its marker stood: ``[BOS] piece₀ media₁ piece₁ …``. The
  number of markers must equal the number of media given.

Limits, checked before any encoder runs:

* the fused sequence must fit ``ctx_len``, else an error naming each part's count;
* one audio clip gives at most ``ctx_len // audio_token_divisor`` tokens (128 at
  ctx 512). Policy ``"error"`` (the default) refuses a longer clip; ``"truncate"``
  keeps its first 128 tokens (the first 512 mel frames = 5.12 s, cut before the
  encoder) and logs a warning saying how much was dropped.

Both return a :class:`Fusion`: the embeddings (B, T, 256), the text id (or
-100) at every position, the segment layout, and :meth:`Fusion.labels` for
training. Generation reuses the Thinker's KV cache:
``omni.generation.generate.generate(model.thinker, embeds=fusion.embeds, ...)``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from torch import nn

from omni import trace
from omni.models.audio_encoder import AudioEncoderConfig, AudioEncoderTiny, output_length
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.models.vision import VisionConfig, ViTTiny
from omni.nn.cross_entropy import IGNORE_INDEX
from omni.tokenizer import AUDIO_MARKER, BOS_ID, IMAGE_MARKER, PAD_ID

log = logging.getLogger(__name__)

AUDIO_POLICIES = ("error", "truncate")
VISION_TOKENS = ("cls", "patches")      # the seed's one CLS token, or CLS + every patch token
PROJECTORS = ("linear", "mlp")            # proj_v / proj_a: the seed's Linear, or a two-layer MLP
MEL_FRAMES_PER_TOKEN = 4                 # two stride-2 convolutions
_MARKERS = re.compile(f"({re.escape(IMAGE_MARKER)}|{re.escape(AUDIO_MARKER)})")


@dataclass
class OmniConfig:
    thinker: ThinkerConfig = field(default_factory=ThinkerConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    audio_token_policy: str = "error"    # a clip over the audio-token limit: "error" or "truncate" (logged)
    audio_token_divisor: int = 4         # audio tokens per clip ≤ ctx_len // this (128 at ctx 512)
    vision_tokens: str = "cls"           # "cls": 1 token per image (the seed); "patches": CLS + N patch tokens
    projector: str = "linear"            # proj_v / proj_a: "linear" (the seed) or "mlp" (Linear → GELU → Linear)

    def __post_init__(self):
        # Built from a checkpoint's JSON: sub-configs arrive as dicts; Config(**d) rejects unknown keys.
        for name, cls in (("thinker", ThinkerConfig), ("vision", VisionConfig), ("audio", AudioEncoderConfig)):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, cls(**getattr(self, name)))
        if self.audio_token_policy not in AUDIO_POLICIES:
            raise ValueError(f"audio_token_policy must be one of {AUDIO_POLICIES}, got {self.audio_token_policy!r}")
        assert self.audio_token_divisor >= 1, f"audio_token_divisor must be ≥ 1, got {self.audio_token_divisor}"
        if self.vision_tokens not in VISION_TOKENS:
            raise ValueError(f"vision_tokens must be one of {VISION_TOKENS}, got {self.vision_tokens!r}")
        if self.projector not in PROJECTORS:
            raise ValueError(f"projector must be one of {PROJECTORS}, got {self.projector!r}")

    @property
    def image_tokens(self) -> int:
        """Thinker positions one image takes: 1 (CLS) or 1 + N patches (50 for 224 px with 32 px patches)."""
        return 1 if self.vision_tokens == "cls" else 1 + self.vision.n_patches

    @property
    def max_audio_tokens(self) -> int:
        return self.thinker.ctx_len // self.audio_token_divisor

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Segment:
    kind: str        # "image", "audio" or "text"
    start: int       # first position in the fused sequence
    length: int      # tokens

    @property
    def stop(self) -> int:
        return self.start + self.length


@dataclass
class Fusion:
    embeds: torch.Tensor        # (B, T, d_model): what the Thinker reads
    token_ids: torch.Tensor     # (B, T): the text id at text positions, IGNORE_INDEX at media positions
    segments: list[Segment]     # the layout, in sequence order

    def positions(self, kind: str) -> list[Segment]:
        return [s for s in self.segments if s.kind == kind]

    def counts(self) -> str:
        """'image 1 + audio 25 + text 9' (adjacent text pieces are listed separately)."""
        return " + ".join(f"{s.kind} {s.length}" for s in self.segments)

    def labels(self, prompt_tokens: int | Sequence[int] = 0) -> torch.Tensor:
        """Training targets (B, T), aligned with the inputs as in Hugging Face:
        the loss compares logits[:, :-1] with labels[:, 1:].

        IGNORE_INDEX (-100) on media positions, on the first ``prompt_tokens``
        text tokens of each row (an int, or one count per row: the part the
        model is given, not asked to produce) and on PAD tokens.
        """
        B, T = self.token_ids.shape
        counts = [prompt_tokens] * B if isinstance(prompt_tokens, int) else list(prompt_tokens)
        if len(counts) != B:
            raise ValueError(f"prompt_tokens has {len(counts)} entries for a batch of {B}")
        is_text = self.token_ids != IGNORE_INDEX                                   # (B, T)
        text_index = is_text.long().cumsum(dim=1) - 1                              # 0, 1, … over text positions
        prompt = text_index < torch.tensor(counts, device=text_index.device)[:, None]
        keep = is_text & ~prompt & (self.token_ids != PAD_ID)
        return torch.where(keep, self.token_ids, torch.full_like(self.token_ids, IGNORE_INDEX))

    def span_labels(self, spans: Sequence[Sequence[tuple[int, int]]]) -> torch.Tensor:
        """Training targets (B, T) like :meth:`labels`, but learned only inside the given text-token
        spans [start, stop) of each row (every answer of a multi-turn dialogue, say); -100 elsewhere."""
        B, T = self.token_ids.shape
        if len(spans) != B:
            raise ValueError(f"spans has {len(spans)} rows for a batch of {B}")
        is_text = self.token_ids != IGNORE_INDEX                                   # (B, T)
        text_index = is_text.long().cumsum(dim=1) - 1                              # 0, 1, … over text positions
        learned = torch.zeros_like(is_text)
        for b, row in enumerate(spans):
            for start, stop in row:
                learned[b] |= (text_index[b] >= start) & (text_index[b] < stop)
        keep = is_text & learned & (self.token_ids != PAD_ID)
        return torch.where(keep, self.token_ids, torch.full_like(self.token_ids, IGNORE_INDEX))


def projector(kind: str, d_in: int, d_out: int) -> nn.Module:
    """The map from an encoder's width to the Thinker's: the seed's one Linear, or LLaVA-1.5's two-layer MLP
    (Liu et al. 2023: Linear → GELU → Linear), which can reshape features per token before the Thinker reads them."""
    if kind == "linear":
        return nn.Linear(d_in, d_out)
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))


class OmniModel(nn.Module):
    def __init__(self, cfg: OmniConfig):
        super().__init__()
        self.cfg = cfg
        self.vision = ViTTiny(cfg.vision)
        self.audio_encoder = AudioEncoderTiny(cfg.audio)
        self.proj_v = projector(cfg.projector, cfg.vision.d_model, cfg.thinker.d_model)    # 128 → 256
        self.proj_a = projector(cfg.projector, cfg.audio.d_model, cfg.thinker.d_model)     # 192 → 256
        self.thinker = ThinkerLM(cfg.thinker)

    # -- one modality at a time ------------------------------------------------
    @trace.stage("vision")
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, 3, 224, 224) → image tokens (B, image_tokens, d_model): the CLS alone (the seed's
        one token) or, with ``vision_tokens="patches"``, the CLS followed by the N patch tokens."""
        cls, patches = self.vision(pixels)                                          # (B, 1, 128), (B, N, 128)
        tokens = cls if self.cfg.vision_tokens == "cls" else torch.cat([cls, patches], dim=1)
        y = self.proj_v(tokens)                                                     # (B, image_tokens, d_model)
        trace.record("proj_v", y, "image token(s) in the Thinker's space")
        return y

    def audio_token_count(self, n_frames: int, policy: str | None = None, what: str = "audio clip") -> int:
        """Tokens a clip of ``n_frames`` mel frames will give after the policy (raises under "error")."""
        policy = policy or self.cfg.audio_token_policy
        if policy not in AUDIO_POLICIES:
            raise ValueError(f"audio policy must be one of {AUDIO_POLICIES}, got {policy!r}")
        n, limit = int(output_length(n_frames)), self.cfg.max_audio_tokens
        if n <= limit:
            return n
        if policy == "error":
            raise ValueError(
                f"{what}: {n_frames} mel frames give {n} audio tokens, over the limit of {limit} "
                f"(ctx_len {self.cfg.thinker.ctx_len} // {self.cfg.audio_token_divisor}); shorten the clip "
                f"or pass audio_policy='truncate' to keep its first {limit} tokens "
                f"({limit * MEL_FRAMES_PER_TOKEN} frames)")
        return limit

    @trace.stage("audio encoder")
    def encode_audio(self, mel: torch.Tensor, policy: str | None = None, what: str = "audio clip") -> torch.Tensor:
        """mel (B, F, 128) → audio tokens (B, min(output_length(F), limit), d_model), per the audio policy."""
        assert mel.dim() == 3, f"encode_audio expects mel (B, F, n_mels), got {tuple(mel.shape)}"
        n_frames = mel.shape[1]
        n = self.audio_token_count(n_frames, policy, what)
        if n < output_length(n_frames):
            keep = n * MEL_FRAMES_PER_TOKEN
            log.warning("%s: truncated from %d to %d audio tokens (kept the first %d of %d mel frames) to stay "
                        "within ctx_len %d // %d", what, output_length(n_frames), n, keep, n_frames,
                        self.cfg.thinker.ctx_len, self.cfg.audio_token_divisor)
            mel = mel[:, :keep]
        x = self.audio_encoder(mel)                                                 # (B, n, 192)
        y = self.proj_a(x)                                                          # (B, n, d_model)
        trace.record("proj_a", y, "audio tokens in the Thinker's space")
        return y

    @trace.stage("audio encoder")
    def encode_audio_batch(self, mels: Sequence[torch.Tensor], policy: str | None = None) -> list[torch.Tensor]:
        """Clips of different lengths, each mel (F_i, 128) → their tokens, each (n_i, d_model), from one
        right-padded AudioEncoderTiny call (padding is masked, so each equals :meth:`encode_audio` alone)."""
        counts = [self.audio_token_count(m.shape[0], policy, what=f"audio clip {i}") for i, m in enumerate(mels)]
        frames = [min(m.shape[0], n * MEL_FRAMES_PER_TOKEN) if n < output_length(m.shape[0]) else m.shape[0]
                  for m, n in zip(mels, counts)]
        padded = mels[0].new_zeros(len(mels), max(frames), mels[0].shape[1])            # (B, F_max, 128)
        for i, (m, f) in enumerate(zip(mels, frames)):
            padded[i, :f] = m[:f]
        lengths = torch.tensor(frames, device=padded.device)
        x = self.audio_encoder(padded, mel_lengths=lengths)                             # (B, n_max, 192)
        tokens = self.proj_a(x)                                                         # (B, n_max, d_model)
        return [tokens[i, :n] for i, n in enumerate(counts)]

    # -- fusion ----------------------------------------------------------------
    def fuse_rows(self, rows: Sequence[Sequence[tuple[str, torch.Tensor]]],
                  audio_policy: str | None = None) -> list[Fusion]:
        """Fuse several unbatched rows — parts ("text", ids (n,)), ("image", pixels (3, H, W)),
        ("audio", mel (F, 128)) — as :meth:`fuse_parts` would one row at a time, but with every image
        of every row in one ViTTiny call and every clip in one padded AudioEncoderTiny call."""
        images = [x for row in rows for kind, x in row if kind == "image"]
        clips = [x for row in rows for kind, x in row if kind == "audio"]
        image_tokens = list(self.encode_image(torch.stack(images))) if images else []  # each (k, d_model)
        audio_tokens = self.encode_audio_batch(clips, audio_policy) if clips else []   # each (n_i, d_model)
        fusions = []
        for row in rows:
            encoded = [(image_tokens if kind == "image" else audio_tokens).pop(0)[None]
                       for kind, _ in row if kind != "text"]
            fusions.append(self.fuse_parts([(kind, x[None]) for kind, x in row], audio_policy, encoded=encoded))
        return fusions

    def fuse_parts(self, parts: Sequence[tuple[str, torch.Tensor]], audio_policy: str | None = None,
                   encoded: Sequence[torch.Tensor] | None = None) -> Fusion:
        """Lay out ``parts`` in the order given: ("text", ids (B, n)), ("image", pixels (B, 3, H, W)),
        ("audio", mel (B, F, 128)). Counts and the context length are checked before encoding.
        ``encoded`` (used by :meth:`fuse_rows`) gives the media parts' tokens already computed, in order."""
        if not parts:
            raise ValueError("nothing to fuse: no text, image or audio given")
        B = parts[0][1].shape[0]
        counts = []
        for i, (kind, x) in enumerate(parts):
            if x.shape[0] != B:
                raise ValueError(f"part {i} ({kind}) has batch {x.shape[0]}, part 0 has batch {B}")
            if kind == "text":
                assert x.dim() == 2, f"text ids must be (B, n), got {tuple(x.shape)}"
                counts.append(x.shape[1])
            elif kind == "image":
                counts.append(self.cfg.image_tokens)
            elif kind == "audio":
                assert x.dim() == 3, f"audio mel must be (B, F, n_mels), got {tuple(x.shape)}"
                counts.append(self.audio_token_count(x.shape[1], audio_policy, what=f"audio (part {i})"))
            else:
                raise ValueError(f"part {i}: unknown kind {kind!r} (text, image or audio)")
        total, ctx = sum(counts), self.cfg.thinker.ctx_len
        if total > ctx:
            listed = " + ".join(f"{k} {n}" for (k, _), n in zip(parts, counts))
            raise ValueError(f"fused sequence of {total} tokens exceeds ctx_len={ctx}: {listed}")

        embeds, ids, segments, start = [], [], [], 0
        encoded = list(encoded) if encoded is not None else None
        for i, ((kind, x), n) in enumerate(zip(parts, counts)):
            if kind == "text":
                e = self.thinker.embed(x)                                           # (B, n, d_model)
                trace.record("text.embeds", e, "text token embeddings", stage="fusion")
                tid = x.long()
            else:
                if encoded is not None:
                    e = encoded.pop(0)
                elif kind == "image":
                    e = self.encode_image(x)
                else:
                    e = self.encode_audio(x, audio_policy, what=f"audio (part {i})")
                tid = torch.full((B, n), IGNORE_INDEX, dtype=torch.long, device=e.device)
            assert e.shape[1] == n, f"part {i} ({kind}) gave {e.shape[1]} tokens, expected {n}"
            embeds.append(e)
            ids.append(tid)
            segments.append(Segment(kind, start, n))
            start += n
        fused = torch.cat(embeds, dim=1)                                            # (B, T, d_model)
        trace.record("fusion.embeds", fused, " + ".join(f"{s.kind} {s.length}" for s in segments), stage="fusion")
        return Fusion(fused, torch.cat(ids, dim=1), segments)

    def fuse(self, ids: torch.Tensor, pixels: torch.Tensor | None = None, mel: torch.Tensor | None = None,
             audio_policy: str | None = None) -> Fusion:
        """The seed's layout: [image tokens, audio tokens, text tokens].

        ids (B, n) text ids (with BOS); pixels (B, 3, 224, 224); mel (B, F, 128).
        Every row shares one layout (clips of equal length); a batch of
        different lengths is fused row by row and padded by the collator.
        """
        parts = ([("image", pixels)] if pixels is not None else []) + \
                ([("audio", mel)] if mel is not None else []) + [("text", ids)]
        return self.fuse_parts(parts, audio_policy)

    def fuse_prompt(self, prompt: str, tokenizer, images: Sequence[torch.Tensor] = (),
                    mels: Sequence[torch.Tensor] = (), audio_policy: str | None = None) -> Fusion:
        """Placeholder layout for one prompt: each ``<image>`` / ``<audio>`` marker is replaced, in order,
        by the next image (3, 224, 224) / mel (F, 128) given. The sequence starts with BOS; text pieces
        are tokenized without BOS; empty pieces vanish."""
        pieces = _MARKERS.split(prompt)            # text, marker, text, marker, …, text
        n_img, n_aud = pieces.count(IMAGE_MARKER), pieces.count(AUDIO_MARKER)
        if (n_img, n_aud) != (len(images), len(mels)):
            raise ValueError(f"prompt has {n_img} {IMAGE_MARKER} and {n_aud} {AUDIO_MARKER} markers, but "
                             f"{len(images)} images and {len(mels)} audio clips were given")
        images, mels = list(images), list(mels)
        device = self.thinker.tok_emb.weight.device
        parts: list[tuple[str, torch.Tensor]] = []
        text: list[int] = [BOS_ID]
        for piece in pieces:
            if piece in (IMAGE_MARKER, AUDIO_MARKER):
                if text:
                    parts.append(("text", torch.tensor([text], device=device)))
                    text = []
                if piece == IMAGE_MARKER:
                    img = images.pop(0)
                    parts.append(("image", img[None] if img.dim() == 3 else img))
                else:
                    mel = mels.pop(0)
                    parts.append(("audio", mel[None] if mel.dim() == 2 else mel))
            elif piece:
                text += tokenizer.encode(piece, add_bos=False)
        if text:
            parts.append(("text", torch.tensor([text], device=device)))
        return self.fuse_parts(parts, audio_policy)

    def forward(self, ids: torch.Tensor, pixels: torch.Tensor | None = None, mel: torch.Tensor | None = None,
                audio_policy: str | None = None) -> torch.Tensor:
        """The seed's layout straight to logits (B, T, vocab): :meth:`fuse` then the Thinker."""
        return self.thinker(embeds=self.fuse(ids, pixels, mel, audio_policy).embeds)
