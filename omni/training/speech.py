"""The speech stages' data: the world's clips as speech mels, RVQ codes, and padded Talker batches.

    {tts,asr}_{split}.jsonl ──load_checked──▶ SpeechRecord ──load_audio──▶ wave (S,) @ 16 kHz
        ──speech_mel──▶ mel (S // 1280, 128)                     the codec trains on these frames
        ──RVQ.encode──▶ codes (T, 2) + text ids (N,)             the Talker trains on these pairs
    items ──pad_talker_batch──▶ text (B, N_max) left-padded, codes (B, T_max, 2) right-padded

Used by ``train/codec.py``, ``train/talker.py`` and their evaluations
(``omni/evaluation/codec.py``, ``omni/evaluation/talker.py``), so training and
evaluation read clips the same way.

A world writes no manifest for a split that drew no items (a ``small`` world
may have no ``tts_val.jsonl``): :func:`split_records` says so in one line and
reads the other tasks; a split with no clips at all is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from omni.audio.io import load_audio
from omni.audio.speech_mel import SpeechMelConfig, speech_mel
from omni.data.folder import folder_tasks, no_task_message
from omni.data.manifest import SpeechRecord
from omni.data.quality import load_checked
from omni.tokenizer import PAD_ID, BPETokenizer
from omni.training.stage import world_file

SPEECH_TASKS = ("tts", "asr")


def split_records(world: str | Path, tasks: Sequence[str], split: str,
                  say: Callable[[str], None] = print) -> list[SpeechRecord]:
    """The checked speech records of ``split`` for each task in ``tasks`` (e.g. ("tts", "asr"))."""
    world = Path(world)
    world_file(world, "card.json")                     # a clear error if this is not a world folder
    if not set(tasks) & set(folder_tasks(world)):
        raise FileNotFoundError(no_task_message(world, tasks))
    records = []
    for task in tasks:
        if task not in SPEECH_TASKS:
            raise ValueError(f"speech task must be one of {SPEECH_TASKS}, got {task!r}")
        path = world / f"{task}_{split}.jsonl"
        if not path.is_file():
            say(f"[data] {path.name}: not in {world} (the world drew no {task} clips for its {split} split)")
            continue
        kept, report = load_checked(path, task)
        bad = report.counts()
        say(f"[data] {path}: {len(kept)} clips" + (f"; dropped {bad}" if bad else ""))
        records += kept
    if not records:
        raise ValueError(f"{world} has no {'/'.join(tasks)} clips in its {split!r} split "
                         f"(looked for {', '.join(f'{t}_{split}.jsonl' for t in tasks)})")
    return records


def clip_mels(records: Sequence[SpeechRecord], mel_cfg: SpeechMelConfig = SpeechMelConfig()) -> list[torch.Tensor]:
    """One speech mel (T_i, n_mels) per clip; T_i = samples // hop (a trailing partial hop is dropped)."""
    mels = []
    for r in records:
        wave = load_audio(r.audio, mel_cfg.sample_rate)                       # (S,)
        if wave.shape[0] < mel_cfg.hop_length:
            raise ValueError(f"{r.audio} ({r.id}) has {wave.shape[0]} samples, fewer than one speech-mel "
                             f"frame of {mel_cfg.hop_length}")
        mels.append(speech_mel(wave, mel_cfg))                                # (T_i, n_mels)
    return mels


def talker_text_ids(tok: BPETokenizer, text: str, max_tokens: int, where: str) -> torch.Tensor:
    """The ids the Talker speaks for ``text`` (N,): no BOS, as :func:`omni.pipelines.tts.speak` encodes."""
    ids = tok.encode(text, add_bos=False)
    if not 1 <= len(ids) <= max_tokens:
        raise ValueError(f"{where}: {text!r} is {len(ids)} tokens; the Talker takes 1 to "
                         f"max_text_tokens={max_tokens}")
    return torch.tensor(ids, dtype=torch.long)


@torch.no_grad()
def talker_items(records: Sequence[SpeechRecord], mels: Sequence[torch.Tensor], rvq, tok: BPETokenizer,
                 max_text_tokens: int, max_frames: int) -> list[dict[str, torch.Tensor]]:
    """Pairs {"text": (N,), "codes": (T, K)} for the Talker: each clip's mel through the codec."""
    items = []
    for r, mel in zip(records, mels, strict=True):
        if mel.shape[0] > max_frames:
            raise ValueError(f"{r.audio} ({r.id}) is {mel.shape[0]} frames, more than the Talker's "
                             f"max_frames={max_frames}")
        codes = rvq.encode(mel[None])[0]                                      # (T, K)
        items.append({"text": talker_text_ids(tok, r.text, max_text_tokens, f"{r.id}"), "codes": codes})
    return items


def pad_talker_batch(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Items of different lengths → one batch.

    text (B, N_max) is **left**-padded with PAD_ID and ``text_pad`` (B, N_max) is
    True there, so every text ends right before its first frame (RoPE sees the
    same text-to-frame offsets as in unpadded generation); codes (B, T_max, K)
    are right-padded with 0 and ``lengths`` (B,) counts the real frames.
    """
    B = len(items)
    n_max = max(it["text"].shape[0] for it in items)
    t_max = max(it["codes"].shape[0] for it in items)
    K = items[0]["codes"].shape[1]
    text = torch.full((B, n_max), PAD_ID, dtype=torch.long)
    text_pad = torch.ones(B, n_max, dtype=torch.bool)
    codes = torch.zeros(B, t_max, K, dtype=torch.long)
    lengths = torch.zeros(B, dtype=torch.long)
    for i, it in enumerate(items):
        n, t = it["text"].shape[0], it["codes"].shape[0]
        text[i, n_max - n:] = it["text"]
        text_pad[i, n_max - n:] = False
        codes[i, :t] = it["codes"]
        lengths[i] = t
    return {"text": text, "text_pad": text_pad, "codes": codes, "lengths": lengths}


# -- which codec a Talker was trained on ----------------------------------------

CODEC_FINGERPRINT = "codec.sha256"      # written next to the Talker's export


def codec_fingerprint(codec_dir: str | Path) -> str:
    """SHA-256 of an exported codec's weights: a Talker's codes mean nothing under another codec."""
    import hashlib

    weights = Path(codec_dir) / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"no codec at {codec_dir}: {weights} not found (train it: omni train codec)")
    return hashlib.sha256(weights.read_bytes()).hexdigest()


def check_codec(talker_dir: str | Path, codec_dir: str | Path) -> None:
    """Raise ValueError unless ``codec_dir`` holds the codec the Talker in ``talker_dir`` was trained on."""
    recorded = Path(talker_dir) / CODEC_FINGERPRINT
    if not recorded.is_file():
        raise FileNotFoundError(f"{recorded} not found: the Talker export does not say which codec it speaks")
    want, got = recorded.read_text().split()[0], codec_fingerprint(codec_dir)
    if want != got:
        raise ValueError(f"the Talker in {talker_dir} was trained on codec {want[:12]}…, but {codec_dir} "
                         f"holds {got[:12]}…: its codes would decode to the wrong sounds")
