"""Tiny datasets in the real layouts ``omni data import`` reads, written by the tests (not a test module).

Each builder writes into a new folder and returns the path to pass as SRC.
Items are picked so every split gets some (:func:`pick`): the split is a hash
of the transcript (speech), of the line (text) or of the stored media name
(images, MuFun audio), exactly as the importer computes it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from omni.data.media import stored_name
from omni.data.synth import split_of
from omni.data.transcripts import normalize_transcript

WORDS = ["red", "blue", "green", "small", "large", "circle", "square", "star", "piano", "drum", "cat", "dog",
         "moves", "sings", "draws", "sees", "left", "right", "above", "below"]


def pick(candidates, key, want: dict[str, int]) -> list:
    """The first candidates whose split (``split_of(key(c))``) still needs items, until every quota is met."""
    need, out = dict(want), []
    for c in candidates:
        s = split_of(key(c))
        if need.get(s, 0) > 0:
            out.append(c)
            need[s] -= 1
        if not any(need.values()):
            return out
    raise AssertionError(f"not enough candidates for the quotas {want} (left: {need})")


def sentences(seed: int = 0):
    """Endless distinct three-word sentences, upper-case first letter and a full stop (normalisation has work)."""
    rng = np.random.default_rng(seed)
    seen = set()
    while True:
        s = " ".join(rng.choice(WORDS, 3))
        if s not in seen:
            seen.add(s)
            yield s[0].upper() + s[1:] + "."


def tone(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A quiet chord plus noise, (S,) or (S, channels) float32 in [-0.5, 0.5]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f = 200 + 50 * rng.integers(0, 8)
    x = 0.3 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(2 * np.pi * 2.5 * f * t) + 0.05 * rng.standard_normal(t.size)
    x = x.astype(np.float32)
    return np.stack([x, 0.8 * x], axis=1) if channels == 2 else x


def write_audio(path: Path, seconds: float, rate: int, fmt: str, subtype: str | None, channels: int = 1,
                seed: int = 0) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, rate, channels, seed), rate, format=fmt, subtype=subtype)
    return path


SPEECH_QUOTA = {"train": 10, "val": 2, "test": 2}


def speech_texts(n_quota=SPEECH_QUOTA, seed: int = 0, style=lambda s: s) -> list[str]:
    """Transcripts (as ``style`` writes them) that fill the split quotas once normalised."""
    return pick((style(s) for s in sentences(seed)), lambda s: normalize_transcript(s)[0], n_quota)


# ---------------------------------------------------------------------------
def librispeech(root: Path, quota=SPEECH_QUOTA) -> Path:
    """root/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt + FLAC (16 kHz, PCM_16), upper-case transcripts."""
    for i, text in enumerate(speech_texts(quota, style=lambda s: s.rstrip(".").upper())):
        spk, chapter = ("19", "198") if i % 2 else ("26", "495")
        folder = root / spk / chapter
        uid = f"{spk}-{chapter}-{i:04d}"
        write_audio(folder / f"{uid}.flac", 2.5, 16_000, "FLAC", "PCM_16", seed=i)
        with (folder / f"{spk}-{chapter}.trans.txt").open("a", encoding="utf-8") as f:
            f.write(f"{uid} {text}\n")
    return root


def ljspeech(root: Path, quota=None) -> Path:
    """root/metadata.csv (id|text|normalised text) + wavs/*.wav at 22 050 Hz PCM_16; clips ≥ 4 s (the Talker's min)."""
    quota = quota or {"train": 10, "val": 2, "test": 3}
    lines = []
    for i, text in enumerate(speech_texts(quota, seed=1)):
        uid = f"LJ001-{i:04d}"
        write_audio(root / "wavs" / f"{uid}.wav", 4.5, 22_050, "WAV", "PCM_16", seed=i)
        lines.append(f"{uid}|{text} No. {i}|{text}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def asr_jsonl(root: Path) -> Path:
    """manifest.jsonl {"audio_filepath", "text", "speaker"} with OGG/Vorbis stereo 48 kHz clips."""
    rows = []
    for i, text in enumerate(speech_texts()):
        rel = f"clips/{i:03d}.ogg"
        write_audio(root / rel, 2.5, 48_000, "OGG", "VORBIS", channels=2, seed=i)
        rows.append({"audio_filepath": rel, "text": text, "speaker": f"spk{i % 3}"})
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def asr_csv(root: Path) -> Path:
    """data.csv (audio,text) with 44.1 kHz float WAV and 24-bit WAV clips."""
    path = root / "data.csv"
    root.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audio", "text"])
        for i, text in enumerate(speech_texts()):
            rel = f"wav/{i:03d}.wav"
            write_audio(root / rel, 2.5, 44_100, "WAV", "FLOAT" if i % 2 else "PCM_24", seed=i)
            w.writerow([rel, text])
    return path


def text_folder(root: Path, lines_per_file: int = 400) -> Path:
    """root/*.txt: sentences one a line, blank lines between paragraphs."""
    gen = sentences(seed=2)
    for name in ("a.txt", "b.txt"):
        lines = []
        for k in range(lines_per_file):
            lines.append(next(gen))
            if k % 10 == 9:
                lines.append("")
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


MODES = ["RGB", "L", "RGBA", "P", "CMYK", "LA"]


def _image(path: Path, i: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(i)
    rgb = Image.fromarray(rng.integers(0, 255, (40 + i, 48, 3), dtype=np.uint8), "RGB")
    mode = MODES[i % len(MODES)]
    img = rgb.convert("RGBA").convert("LA") if mode == "LA" else rgb.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG" if mode in ("RGB", "L", "CMYK") else "PNG")


def image_names(root: Path, quota: dict[str, int], prefix: str = "images/") -> list[str]:
    """Image paths relative to root (``prefix`` + imgNNN.png) whose stored names fill the split quotas."""
    cands = (f"{prefix}img{i:03d}.png" for i in range(10_000))
    return pick(cands, lambda rel: stored_name(root / rel, root, ".png"), quota)


def coco(root: Path, quota=None) -> Path:
    """root/annotations/captions.json (COCO: images [{id, file_name}], annotations [{id, image_id, caption}])
    + root/images/ (pass it as --images), two captions per image, images in several Pillow modes."""
    quota = quota or {"train": 10, "val": 3, "test": 2}
    image_dir = root / "images"
    gen = sentences(seed=3)
    images, anns = [], []
    for i, name in enumerate(image_names(image_dir, quota, prefix="")):
        _image(image_dir / name, i)
        images.append({"id": 100 + i, "file_name": name, "width": 48, "height": 40 + i})
        for k in range(2):
            anns.append({"id": 1000 + 2 * i + k, "image_id": 100 + i, "caption": "  " + next(gen) + " "})
    path = root / "annotations" / "captions.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": anns}), encoding="utf-8")
    return path


def image_qa(root: Path, quota=None) -> Path:
    """root/qa.jsonl {"image", "question", "answer"}, two questions per image."""
    quota = quota or {"train": 6, "val": 2, "test": 1}
    rows = []
    for i, rel in enumerate(image_names(root, quota)):
        _image(root / rel, i)
        rows += [{"image": rel, "question": "what colour is the shape?", "answer": WORDS[i % 3]},
                 {"image": rel, "question": "how many shapes are there?", "answer": str(1 + i % 4)}]
    path = root / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def mufun(root: Path, quota=None) -> Path:
    """root/conversations.json in the MuFun form, with 16 kHz FLAC music clips; some with a segment,
    one two-turn conversation (sft only)."""
    quota = quota or {"train": 8, "val": 2, "test": 1}
    cands = (f"music/clip{i:03d}.flac" for i in range(10_000))
    rels = pick(cands, lambda rel: stored_name(root / rel, root, ".wav"), quota)
    items = []
    for i, rel in enumerate(rels):
        write_audio(root / rel, 3.0, 16_000, "FLAC", "PCM_16", seed=i)
        item = {"id": f"m{i}", "audio": rel,
                "conversations": [{"from": "human", "value": "<audio>\nwhat instrument plays?"},
                                  {"from": "gpt", "value": WORDS[8 + i % 2]}]}
        if i % 3 == 1:
            item["segment"] = [0.5, 2.5]
        if i == 0:
            item["conversations"] += [{"from": "human", "value": "and how fast?"}, {"from": "gpt", "value": "slow"}]
        items.append(item)
    path = root / "conversations.json"
    path.write_text(json.dumps(items, indent=1), encoding="utf-8")
    return path
