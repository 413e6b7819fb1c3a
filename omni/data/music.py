"""Sounds and music: short synthesized clips whose labels are known exactly.

The toy counterpart of MuFun's music questions. A :class:`Sound` names an
instrument-like timbre, what it plays (a repeated note, a chord, a melody
going up or down, or a drum beat), the tempo in BPM and the loudness;
:func:`synthesize` turns it into a 16 kHz waveform with numpy:

    sine tone       sin(2π f t)
    square tone     band-limited: odd harmonics 1/k below Nyquist
    sawtooth tone   band-limited: all harmonics (-1)^(k+1)/k below Nyquist
    plucked string  Karplus–Strong: a noise burst in a delay line of one period, averaged each pass
    drum            a decaying noise burst over a falling 'thump'

One note sounds on every beat, so tempo is audible as the onset rate. Clips
last 1.5–2.5 s, so they fit the tiny audio encoder (25 tokens/s, ≤ 128 tokens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from omni.audio.io import SAMPLE_RATE

INSTRUMENTS = ("sine tone", "square tone", "sawtooth tone", "plucked string", "drum")
KINDS = ("note", "chord", "melody")                 # pitched instruments; the drum plays a "beat"
NOTE_NAMES = ("c", "d", "e", "f", "g", "a", "b")
NOTE_MIDI = (60, 62, 64, 65, 67, 69, 71)            # the natural notes of octave 4
SCALE_STEPS = (0, 2, 4, 5, 7, 9, 11, 12)            # major scale, for melodies
CHORDS = {"major": (0, 4, 7), "minor": (0, 3, 7)}
TEMPO = {"slow": (60, 80), "fast": (140, 170)}      # BPM ranges; nothing between, so the label is clear
LOUDNESS = {"quiet": 0.12, "loud": 0.7}             # peak amplitude
DURATIONS = (1.5, 2.0, 2.5)                          # seconds


@dataclass(frozen=True)
class Sound:
    instrument: str
    kind: str                 # note | chord | melody | beat
    root: int                 # MIDI note (0 for the drum)
    quality: str              # chord quality or melody direction ("up"/"down"); "" otherwise
    bpm: int
    speed: str                # slow | fast
    loudness: str             # quiet | loud
    duration: float           # seconds

    def pitches(self, beat: int) -> list[int]:
        """MIDI notes sounding on ``beat``."""
        if self.kind == "note":
            return [self.root]
        if self.kind == "chord":
            return [self.root + i for i in CHORDS[self.quality]]
        if self.kind == "melody":
            step = SCALE_STEPS[beat % len(SCALE_STEPS)]
            if self.quality == "down":
                step = SCALE_STEPS[len(SCALE_STEPS) - 1 - beat % len(SCALE_STEPS)]
            return [self.root + step]
        return []


def midi_to_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12)


def sample_sound(rng: np.random.Generator) -> Sound:
    instrument = INSTRUMENTS[rng.integers(len(INSTRUMENTS))]
    speed = ("slow", "fast")[rng.integers(2)]
    bpm = int(rng.integers(TEMPO[speed][0], TEMPO[speed][1] + 1))
    loud = ("quiet", "loud")[rng.integers(2)]
    duration = float(DURATIONS[rng.integers(len(DURATIONS))])
    if instrument == "drum":
        return Sound(instrument, "beat", 0, "", bpm, speed, loud, duration)
    kind = KINDS[rng.integers(len(KINDS))]
    root = NOTE_MIDI[rng.integers(len(NOTE_MIDI))]
    quality = {"note": "", "chord": ("major", "minor")[rng.integers(2)], "melody": ("up", "down")[rng.integers(2)]}[kind]
    return Sound(instrument, kind, root, quality, bpm, speed, loud, duration)


# ---------------------------------------------------------------------------
# Synthesis
# ---------------------------------------------------------------------------
def _tone(instrument: str, f: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """One note of ``n`` samples at ``f`` Hz, peak about 1, before the envelope."""
    t = np.arange(n) / SAMPLE_RATE
    nyquist = SAMPLE_RATE / 2
    if instrument == "sine tone":
        return np.sin(2 * np.pi * f * t)
    if instrument in ("square tone", "sawtooth tone"):
        ks = np.arange(1, int(nyquist // f) + 1)
        if instrument == "square tone":
            ks, amps = ks[ks % 2 == 1], 4 / np.pi / ks[ks % 2 == 1]
        else:
            amps = 2 / np.pi * (-1.0) ** (ks + 1) / ks
        return (amps[:, None] * np.sin(2 * np.pi * f * ks[:, None] * t[None, :])).sum(0) / 1.2
    if instrument == "plucked string":
        return karplus_strong(f, n, rng)
    raise ValueError(f"no tone for instrument {instrument!r}")


def karplus_strong(f: float, n: int, rng: np.random.Generator, decay: float = 0.996) -> np.ndarray:
    """y[i] = decay · (y[i-P] + y[i-P-1]) / 2, seeded with one period of the pluck.
    The loop has a delay of P + ½ samples, so P = round(sr / f − ½); it runs one
    period at a time (each block depends only on the previous one), vectorised."""
    p = max(2, int(round(SAMPLE_RATE / f - 0.5)))     # the averaging adds half a sample of delay
    y = np.zeros(n + p + 1)
    # the pluck: noise (the bright attack) over one period of a sine (so the fundamental dominates)
    y[: p + 1] = 0.5 * rng.uniform(-1, 1, p + 1) + np.sin(2 * np.pi * np.arange(p + 1) / (p + 0.5))
    y[: p + 1] -= y[: p + 1].mean()
    for start in range(p + 1, n + p + 1, p):
        stop = min(start + p, n + p + 1)
        i = np.arange(start, stop)
        y[i] = decay * 0.5 * (y[i - p] + y[i - p - 1])
    out = y[p + 1: p + 1 + n]
    return out / max(1e-9, np.abs(out).max())


def _drum(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    noise = rng.uniform(-1, 1, n) * np.exp(-t / 0.04)
    thump = np.sin(2 * np.pi * (120 * t - 300 * t ** 2).clip(min=0)) * np.exp(-t / 0.09)
    return 0.5 * noise + thump


def synthesize(sound: Sound, rng: np.random.Generator) -> np.ndarray:
    """Sound → float32 waveform (T,) at 16 kHz, T = duration · 16000."""
    total = int(round(sound.duration * SAMPLE_RATE))
    beat_len = int(round(60.0 / sound.bpm * SAMPLE_RATE))
    wave = np.zeros(total)
    attack = int(0.01 * SAMPLE_RATE)
    for beat, start in enumerate(range(0, total, beat_len)):
        n = min(beat_len, total - start)
        if sound.kind == "beat":
            note = _drum(n, rng)
        else:
            pitches = sound.pitches(beat)
            note = sum(_tone(sound.instrument, midi_to_hz(m), n, rng) for m in pitches) / len(pitches)
            env = np.exp(-np.arange(n) / (0.6 * beat_len))                   # decay over the beat
            env[:attack] *= np.linspace(0, 1, attack)[: n]
            release = min(n, int(0.02 * SAMPLE_RATE))
            env[n - release:] *= np.linspace(1, 0, release)                 # no click at the next onset
            note = note * env
        wave[start: start + n] += note
    peak = np.abs(wave).max()
    if peak == 0:
        raise ValueError(f"synthesized silence for {sound}")
    return (wave / peak * LOUDNESS[sound.loudness]).astype(np.float32)


# ---------------------------------------------------------------------------
# Words
# ---------------------------------------------------------------------------
def note_name(midi: int) -> str:
    return NOTE_NAMES[NOTE_MIDI.index(midi)]


def describe(sound: Sound) -> str:
    """'a loud plucked string plays a c major chord at a fast tempo'"""
    what = {"note": lambda: f"the note {note_name(sound.root)}",
            "chord": lambda: f"a {note_name(sound.root)} {sound.quality} chord",
            "melody": lambda: f"a melody going {sound.quality}",
            "beat": lambda: "a beat"}[sound.kind]()
    return f"a {sound.loudness} {sound.instrument} plays {what} at a {sound.speed} tempo"


def questions(sound: Sound) -> list[tuple[str, str]]:
    """Every question the clip answers (MuFun-style: instrument, tempo, loudness, content)."""
    qa = [("what instrument is playing?", sound.instrument),
          ("is it fast or slow?", sound.speed),
          ("is it loud or quiet?", sound.loudness),
          ("is it a note, a chord, a melody or a beat?", sound.kind),
          ("describe the sound.", describe(sound))]
    if sound.kind == "note":
        qa.append(("what note is playing?", note_name(sound.root)))
    elif sound.kind == "chord":
        qa.append(("what chord is playing?", f"{note_name(sound.root)} {sound.quality}"))
    elif sound.kind == "melody":
        qa.append(("is the melody going up or down?", sound.quality))
    return qa


# ---------------------------------------------------------------------------
# Labels: what a sound-attribute head is asked (the inverse of describe)
# ---------------------------------------------------------------------------
SOUND_ATTRIBUTES = {                      # attribute → its classes; "-" where the attribute does not apply
    "instrument": INSTRUMENTS,
    "kind": KINDS + ("beat",),
    "speed": tuple(TEMPO),
    "loudness": tuple(LOUDNESS),
    "note": NOTE_NAMES + ("-",),          # the root of a note or chord
    "quality": tuple(CHORDS) + ("up", "down", "-"),   # chord quality or melody direction
}
_DESCRIPTION = re.compile(r"a (\w+) (.+?) plays (.+) at a (\w+) tempo")
_WHAT = {"note": re.compile(r"the note (\w)"), "chord": re.compile(r"a (\w) (\w+) chord"),
         "melody": re.compile(r"a melody going (\w+)"), "beat": re.compile(r"a beat")}


def sound_labels(description: str) -> dict[str, str]:
    """'a loud plucked string plays a c major chord at a fast tempo' → {"instrument": "plucked string", ...}:
    one class of :data:`SOUND_ATTRIBUTES` per attribute; a description :func:`describe` cannot make raises."""
    m = _DESCRIPTION.fullmatch(description)
    if m is None:
        raise ValueError(f"{description!r} is not a sound description ('a <loudness> <instrument> plays <what> "
                         f"at a <speed> tempo', as omni.data.music.describe writes it)")
    loudness, instrument, what, speed = m.groups()
    labels = {"instrument": instrument, "speed": speed, "loudness": loudness, "note": "-", "quality": "-"}
    for kind, pattern in _WHAT.items():
        w = pattern.fullmatch(what)
        if w is None:
            continue
        labels["kind"] = kind
        if kind == "note":
            labels["note"] = w.group(1)
        elif kind == "chord":
            labels["note"], labels["quality"] = w.groups()
        elif kind == "melody":
            labels["quality"] = w.group(1)
        break
    else:
        raise ValueError(f"{description!r}: {what!r} is not a note, a chord, a melody or a beat")
    for attribute, value in labels.items():
        if value not in SOUND_ATTRIBUTES[attribute]:
            raise ValueError(f"{description!r}: {attribute} {value!r} is not one of {SOUND_ATTRIBUTES[attribute]}")
    return labels
