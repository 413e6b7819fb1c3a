"""Media of an import, stored once in the folder's own layout.

Audio: any file soundfile reads (WAV of any sample type, FLAC, OGG/Vorbis, ...),
any rate and channel count, is **converted once, at import**, to 16 kHz mono
PCM-16 WAV in ``DIR/audio/`` (``omni.audio.io.load_audio``: channels averaged,
soxr "HQ" resampling). Converting once rather than resampling on the fly:

* every stage, epoch and evaluation then reads a small file at the rate the
  models hear, so decoding and resampling are paid once, not per epoch;
* a clip that cannot be decoded is found (and counted) at import, not in
  the middle of a training run;
* the duration in the manifest is measured on the very samples trained on.

A resampled clip can overshoot full scale by a little; PCM-16 cannot hold it,
so samples beyond ±1 are clipped to ±1 and the clips that needed it are
counted (``clipped``). Images are hard-linked into ``DIR/images/`` (copied
when the folder is on another file system) and decoded at training time by
``omni.images``, which takes any Pillow mode. Stored names are the source
file's stem plus a hash of its path inside SRC, so two ``0001.wav`` in two
folders stay two files, and one file named by many items is stored once. The
path is taken relative to the folder the format names media from (the image
folder for COCO, the audio root for MuFun, else SRC or the file's folder), so the
name — and the split it decides for images and MuFun audio — does not depend on
where SRC sits on disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from omni.audio.io import SAMPLE_RATE, AudioError, load_audio, save_audio
from omni.data.quality import MISSING_FILE, UNREADABLE_AUDIO

STORED_AUDIO = f"{SAMPLE_RATE // 1000} kHz mono PCM-16 WAV"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def stored_name(path: Path, src_root: Path, suffix: str) -> str:
    """``<stem>-<8 hex of the path relative to src_root><suffix>``: stable wherever SRC lies, unique per file."""
    key = Path(os.path.relpath(path.resolve(), src_root.resolve())).as_posix()
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', path.stem)[:60]}-{digest}{suffix}"


class MediaStore:
    """Converts audio and links images into ``out``, each source file once; keeps the statistics."""

    def __init__(self, src_root: Path, out: Path):
        self.src_root, self.out = src_root, out
        self.audio: dict[Path, tuple[Path, float] | tuple[str, str]] = {}   # src → (dst, seconds) | (reason, detail)
        self.images: dict[Path, Path | tuple[str, str]] = {}
        self.source_formats: Counter = Counter()          # "FLAC PCM_16 44100 Hz 2 ch" → files
        self.image_modes: Counter = Counter()
        self.clipped = 0
        self.copied = self.linked = 0

    # ------------------------------------------------------------------
    def audio_file(self, src: Path) -> tuple[Path, float] | tuple[str, str]:
        """(stored path, seconds), or (reason, detail) when the source is missing or unreadable."""
        if src not in self.audio:
            self.audio[src] = self._convert(src)
        return self.audio[src]

    def _convert(self, src: Path):
        import soundfile as sf

        if not src.is_file():
            return MISSING_FILE, str(src)
        try:
            info = sf.info(str(src))
            wave = load_audio(src).numpy()                                   # (S,) mono float32 @ 16 kHz
        except (sf.LibsndfileError, RuntimeError, TypeError, AudioError) as e:
            return UNREADABLE_AUDIO, f"{src}: {e}"
        self.source_formats[f"{info.format} {info.subtype} {info.samplerate} Hz {info.channels} ch"] += 1
        if np.abs(wave).max() > 1.0:
            self.clipped += 1
            wave = np.clip(wave, -1.0, 1.0)
        dst = self.out / "audio" / stored_name(src, self.src_root, ".wav")
        save_audio(dst, wave)
        return dst, round(len(wave) / SAMPLE_RATE, 4)

    # ------------------------------------------------------------------
    def image_file(self, src: Path) -> Path | tuple[str, str]:
        """The stored path, or (reason, detail) when the source is missing (decoding is checked later)."""
        if src not in self.images:
            self.images[src] = self._link(src)
        return self.images[src]

    def _link(self, src: Path):
        from PIL import Image, UnidentifiedImageError

        if not src.is_file():
            return MISSING_FILE, str(src)
        dst = self.out / "images" / stored_name(src, self.src_root, src.suffix.lower())
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
            self.linked += 1
        except OSError:                                  # another file system, or links not allowed
            shutil.copyfile(src, dst)
            self.copied += 1
        try:
            with Image.open(dst) as im:
                self.image_modes[im.mode] += 1
        except (UnidentifiedImageError, OSError, SyntaxError):
            self.image_modes["(fails to decode)"] += 1
        return dst

    # ------------------------------------------------------------------
    def remove_unused(self, used: set[Path]) -> int:
        """Delete stored files no kept record names (their items turned out bad); returns how many."""
        stored = [v[0] for v in self.audio.values() if isinstance(v[0], Path)]
        stored += [v for v in self.images.values() if isinstance(v, Path)]
        gone = 0
        for p in set(stored) - used:
            p.unlink()
            gone += 1
        for sub in ("audio", "images"):                      # a folder left empty goes too
            folder = self.out / sub
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        return gone
