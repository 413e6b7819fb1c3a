"""Build the synthetic world on disk: ``omni data synth --out DIR --size small --seed 0``.

Everything is a pure function of (size, seed): each item draws from its own
``numpy`` Generator seeded with ``[seed, stream, index]``, manifests are
written with sorted keys, no time stamps are recorded, and espeak-ng is
reseeded before each utterance — so two builds are byte-identical.

Splits are decided by a hash of the item's text (sentence, caption,
question), so a sentence or scene description in test never occurs in train.
Speech in test is spoken only by :data:`~omni.data.speech.TEST_VOICES`.

Layout (paths inside manifests are relative to DIR)::

    DIR/card.json, card.md                 the dataset card
    DIR/corpus_{split}.txt                 LM text, one sentence a line
    DIR/tokenizer_corpus.txt               all train-split text, for `omni tokenizer train`
    DIR/{task}_{split}.jsonl               task ∈ text asr tts caption image_qa audio_qa sft
    DIR/speech/*.wav  DIR/images/*.png  DIR/sounds/*.wav
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omni.audio.io import SAMPLE_RATE, save_audio
from omni.data import music, scenes, speech
from omni.data.card import write_card
from omni.data.coverage import check_coverage
from omni.data.language import text_dialogue, world_grammar
from omni.data.manifest import dumps_row
from omni.data.quality import ctc_min_frames, encoder_frames
from omni.progress import progress_bar
from omni.tokenizer import AUDIO_MARKER, IMAGE_MARKER, CharVocab

GENERATOR_VERSION = "omni-synth-3"      # 3: 20 ASR training voices, 3 held-out ones, wider rate/pitch grid, medium speech ×2
                                        # 2: every image question in sft (was two per image)
SPLITS = ("train", "val", "test")
VAL_PERCENT, TEST_PERCENT = 10, 10
MAX_SPEECH_CHARS = 60         # keeps utterances under ~4.5 s (≤ 128 audio tokens)
CTC_SLACK = 1.2               # synthesized clips get ≥ 1.2 × the CTC minimum of encoder frames ...
SLOWER_WPM = 15               # ... by speaking 15 words/min slower until they do
STREAMS = {"text": 1, "dialogue": 2, "speech": 3, "tts": 4, "scene": 5, "sound": 6, "sft": 7}


@dataclass(frozen=True)
class SizeConfig:
    text: int                 # grammar sentences, all splits
    dialogues: int            # text-only question/answer pairs
    speech: int               # ASR utterances (train/val voices, or the test voice)
    tts: int                  # TTS utterances in the single TTS voice
    scenes: int               # images
    sounds: int               # music/sound clips
    check_coverage: bool = True   # stop if val/test ask what sft_train never teaches (off only for `tiny`)


SIZES = {
    "tiny": SizeConfig(text=120, dialogues=20, speech=10, tts=6, scenes=10, sounds=10,
                       check_coverage=False),    # a plumbing world: 10 sounds cannot hold all 14 chords
    "small": SizeConfig(text=2_000, dialogues=200, speech=600, tts=100, scenes=1_000, sounds=400),
    "medium": SizeConfig(text=40_000, dialogues=3_000, speech=8_000, tts=2_000, scenes=8_000, sounds=3_000),
    "large": SizeConfig(text=400_000, dialogues=30_000, speech=40_000, tts=20_000, scenes=30_000, sounds=15_000),
}


def split_of(key: str) -> str:
    """train / val / test from a stable hash of ``key`` (never Python's salted hash)."""
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100
    return "test" if bucket < TEST_PERCENT else "val" if bucket < TEST_PERCENT + VAL_PERCENT else "train"


def item_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, STREAMS[stream], index])


class _Writer:
    """Collects manifest rows per (task, split) and writes them sorted by id."""

    def __init__(self, out: Path):
        self.out = out
        self.rows: dict[tuple[str, str], list[dict]] = {}

    def add(self, task: str, split: str, row: dict) -> None:
        self.rows.setdefault((task, split), []).append(row)

    def get(self, task: str, split: str) -> list[dict]:
        return self.rows.get((task, split), [])

    def flush(self) -> None:
        for (task, split), rows in sorted(self.rows.items()):
            with (self.out / f"{task}_{split}.jsonl").open("w", encoding="utf-8", newline="\n") as f:
                for row in sorted(rows, key=lambda r: r["id"]):
                    f.write(dumps_row(row) + "\n")


def build(out: str | os.PathLike, size: str = "small", seed: int = 0, progress: bool = True) -> dict:
    """Write the whole synthetic world to ``out``; returns the dataset card (a dict)."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    cfg = SIZES[size]
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output folder {out} is not empty; choose a new one (builds never mix)")
    for sub in ("speech", "images", "sounds"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    w = _Writer(out)
    bar = lambda it, desc: progress_bar(it, desc=desc, enabled=progress, leave=False)   # noqa: E731

    grammar = world_grammar()
    stats = {"text": _build_text(w, grammar, cfg, seed, bar),
             "dialogues": _build_dialogues(w, cfg, seed, bar),
             "speech": _build_speech(w, grammar, cfg, seed, bar),
             "scenes": _build_scenes(w, cfg, seed, bar),
             "sounds": _build_sounds(w, cfg, seed, bar)}
    _build_sft(w, seed)
    if cfg.check_coverage:
        check_coverage(w.rows, where=f"{size} world (seed {seed})")
    w.flush()
    _write_corpora(out, w)
    return write_card(out, grammar, w.rows, stats, size=size, seed=seed, version=GENERATOR_VERSION)


# ---------------------------------------------------------------------------
# One builder per modality
# ---------------------------------------------------------------------------
def _build_text(w: _Writer, grammar, cfg: SizeConfig, seed: int, bar) -> dict:
    for i in bar(range(cfg.text), "text"):
        s = grammar.sample(item_rng(seed, "text", i))
        w.add("text", split_of(s.text), {"id": f"txt{i:07d}", "text": s.text, "bits": round(s.bits, 6)})
    return {}


def _build_dialogues(w: _Writer, cfg: SizeConfig, seed: int, bar) -> dict:
    for i in bar(range(cfg.dialogues), "dialogues"):
        q, a = text_dialogue(item_rng(seed, "dialogue", i))
        w.add("_dialogue", split_of(q), {"id": f"dlg{i:07d}", "question": q, "answer": a})
    return {}


def _speech_sentence(grammar, rng: np.random.Generator) -> str:
    while True:                                  # short sentences only (a bounded, seeded loop)
        text = grammar.sample(rng).text
        if len(text) <= MAX_SPEECH_CHARS:
            return text


@dataclass(frozen=True)
class SpeechJob:
    task: str                 # asr | tts
    index: int
    text: str
    split: str
    voice: speech.Voice
    clip_seed: int


def speech_jobs(grammar, cfg: SizeConfig, seed: int):
    """Every utterance a build speaks, in order, before any audio is made: what is said, in which
    split, by which voice. ASR test sentences get a held-out voice, train and val ones a training voice."""
    for task, n in (("asr", cfg.speech), ("tts", cfg.tts)):
        for i in range(n):
            rng = item_rng(seed, "speech" if task == "asr" else "tts", i)
            text = _speech_sentence(grammar, rng)
            split = split_of(text)
            if task == "tts":
                voice = speech.Voice(speech.TTS_VOICE, 175, 50)
            else:
                voice = speech.pick_voice(rng, speech.TEST_VOICES if split == "test" else speech.TRAIN_VOICES)
            yield SpeechJob(task, i, text, split, voice, int(rng.integers(2**31)))


def _build_speech(w: _Writer, grammar, cfg: SizeConfig, seed: int, bar) -> dict:
    engine, vocab = speech.Espeak.get(), CharVocab()
    seconds, slowed = {s: 0.0 for s in SPLITS}, 0
    for job in bar(list(speech_jobs(grammar, cfg, seed)), "speech"):
        task, i, text, split, voice, clip_seed = job.task, job.index, job.text, job.split, job.voice, job.clip_seed
        vocab.encode(text)                       # raises if the grammar ever writes a non-CTC character
        wave = engine.synth(text, voice, seed=clip_seed)
        while encoder_frames(len(wave)) < CTC_SLACK * ctc_min_frames(text):
            if voice.rate - SLOWER_WPM < min(speech.TRAIN_RATES) - 4 * SLOWER_WPM:
                raise RuntimeError(f"{task} clip for {text!r} ({voice}) gives {encoder_frames(len(wave))} encoder "
                                   f"frames, CTC needs {ctc_min_frames(text)} × {CTC_SLACK} even when slowed down")
            voice = speech.Voice(voice.name, voice.rate - SLOWER_WPM, voice.pitch)
            wave = engine.synth(text, voice, seed=clip_seed)
            slowed += 1
        uid = f"{task}{i:06d}"
        path = save_audio(w.out / "speech" / f"{uid}.wav", wave)
        duration = round(len(wave) / SAMPLE_RATE, 4)
        seconds[split] += duration
        w.add(task, split, {"id": uid, "audio": path.relative_to(w.out).as_posix(), "text": text,
                            "duration": duration, "speaker": voice.name})
    clips = {v: {s: 0 for s in SPLITS} for v in speech.TRAIN_VOICES + speech.TEST_VOICES}
    for split in SPLITS:
        for r in w.get("asr", split):
            clips[r["speaker"]][split] += 1
    return {"seconds": {k: round(v, 2) for k, v in seconds.items()},
            "train_voices": list(speech.TRAIN_VOICES), "test_voices": list(speech.TEST_VOICES),
            "asr_clips_per_voice": clips,
            "tts_voice": speech.TTS_VOICE, "slowed_for_ctc": slowed}


def _build_scenes(w: _Writer, cfg: SizeConfig, seed: int, bar) -> dict:
    for i in bar(range(cfg.scenes), "scenes"):
        rng = item_rng(seed, "scene", i)
        scene = scenes.sample_scene(rng)
        cap = scenes.caption(scene)
        split, uid = split_of(cap), f"img{i:06d}"
        rel = f"images/{uid}.png"
        scenes.render(scene).save(w.out / rel, format="PNG", optimize=False)
        w.add("caption", split, {"id": uid, "image": rel, "caption": cap})
        for k, (q, a) in enumerate(scenes.questions(scene, rng)):
            w.add("image_qa", split, {"id": f"{uid}-q{k}", "image": rel, "question": q, "answer": a})
    return {}


def _build_sounds(w: _Writer, cfg: SizeConfig, seed: int, bar) -> dict:
    seconds = {s: 0.0 for s in SPLITS}
    for i in bar(range(cfg.sounds), "sounds"):
        rng = item_rng(seed, "sound", i)
        snd = music.sample_sound(rng)
        split, uid = split_of(music.describe(snd)), f"snd{i:06d}"
        rel = f"sounds/{uid}.wav"
        save_audio(w.out / rel, music.synthesize(snd, rng))
        seconds[split] += snd.duration
        for k, (q, a) in enumerate(music.questions(snd)):
            w.add("audio_qa", split, {"id": f"{uid}-q{k}", "audio": rel, "question": q, "answer": a,
                                      "segment": None})
    return {"seconds": {k: round(v, 2) for k, v in seconds.items()}}


def _build_sft(w: _Writer, seed: int) -> None:
    """Omni dialogues from the other tasks' items of the same split: one turn
    each, and every fourth dialogue gets a second turn from the next item, so
    image, audio and text questions meet in one conversation.

    Every item becomes a turn: each image's caption and *all* its questions
    (one of each type, :func:`omni.data.scenes.questions`), every sound
    question, every ASR clip and every text dialogue — so the training split
    teaches each question type the held-out splits ask (checked after the
    build by :func:`omni.data.coverage.check_coverage`)."""
    for split in SPLITS:
        turns = []      # (user content, assistant content, images, audios)
        by_image: dict[str, list[dict]] = {}
        for r in w.get("image_qa", split):
            by_image.setdefault(r["image"], []).append(r)
        for r in w.get("caption", split):
            turns.append((f"{IMAGE_MARKER}\ndescribe the picture.", r["caption"], [r["image"]], []))
            for q in by_image.get(r["image"], []):
                turns.append((f"{IMAGE_MARKER}\n{q['question']}", q["answer"], [r["image"]], []))
        for r in w.get("audio_qa", split):
            turns.append((f"{AUDIO_MARKER}\n{r['question']}", r["answer"], [], [r["audio"]]))
        for r in w.get("asr", split):
            turns.append((f"{AUDIO_MARKER}\nwhat did the speaker say?", r["text"], [], [r["audio"]]))
        for r in w.get("_dialogue", split):
            turns.append((r["question"], r["answer"], [], []))
        rng = item_rng(seed, "sft", SPLITS.index(split))
        order = rng.permutation(len(turns)).tolist()
        k = n = 0
        while k < len(order):
            take = 2 if (n % 4 == 3 and k + 1 < len(order)) else 1
            msgs, images, audios = [], [], []
            for j in order[k: k + take]:
                user, answer, im, au = turns[j]
                msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
                images += im
                audios += au
            w.add("sft", split, {"id": f"sft-{split}-{n:07d}", "messages": msgs, "images": images, "audios": audios,
                                  "segments": [None] * len(audios)})
            k, n = k + take, n + 1
    for split in SPLITS:            # dialogues live on only inside sft
        w.rows.pop(("_dialogue", split), None)


def _write_corpora(out: Path, w: _Writer) -> None:
    for split in SPLITS:
        rows = sorted(w.get("text", split), key=lambda r: r["id"])
        (out / f"corpus_{split}.txt").write_text("".join(r["text"] + "\n" for r in rows), encoding="utf-8")
    lines = [r["text"] for r in w.get("text", "train")]
    for r in sorted(w.get("sft", "train"), key=lambda r: r["id"]):
        for m in r["messages"]:
            lines.append(m["content"].replace(IMAGE_MARKER + "\n", "").replace(AUDIO_MARKER + "\n", ""))
    (out / "tokenizer_corpus.txt").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
