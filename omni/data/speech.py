"""Speech synthesis with espeak-ng, driven through ctypes.

The ``espeakng-loader`` wheel ships ``libespeak-ng`` and its voice data, so
nothing is installed system-wide. We call the C API directly:

    espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0) → 22,050 Hz
    espeak_SetSynthCallback(cb)        cb(short *wav, int n, espeak_EVENT *ev) collects samples
    espeak_SetVoiceByName("en-us+f3")  language voice + optional "+variant"
    espeak_SetParameter(espeakRATE, words_per_minute, 0), (espeakPITCH, 0..100, 0)
    espeak_Synth(text, ...)            returns once the callback has seen every sample

and resample to 16 kHz with :func:`omni.audio.io.resample`.

Determinism: espeak-ng draws noise from its own generator (breathy variants
such as ``+f2``) and from the C library's ``rand()`` (fricatives), and keeps
state from one utterance to the next. We seed both generators
(``espeak_ng_SetRandSeed``, ``srand``) and speak each utterance with a freshly
loaded copy of the library (see :class:`Espeak`), so a clip is a function of
(text, voice, rate, pitch, seed) alone: byte-identical in every process.

If the library or its data cannot be loaded, :class:`EspeakError` says so; the
synthetic world never substitutes silence or a tone for speech.
"""

from __future__ import annotations

import ctypes
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omni.audio.io import SAMPLE_RATE, resample

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE, ESPEAK_PITCH = 1, 3
EE_OK = 0
TRIM_LEVEL = 0.01             # |sample| below this at either end counts as silence
TRIM_MARGIN_S = 0.05          # silence kept at each end after trimming
PEAK = 0.9                    # every utterance is peak-normalised to this level

# Voices are "language[+variant]": an accent (espeak-ng's English languages: en = British,
# en-us, en-us-nyc, en-gb-x-rp, en-gb-scotland, en-gb-x-gbclan (Lancashire), en-029 (Caribbean))
# and a variant (f1..f5 female, m1..m8 male, klatt..klatt6 the Klatt formant synthesiser).
# TEST_VOICES are never used for train or val, and each is new in one way: a female variant
# (+f4), a male variant (+m5) and an accent (en-029) that no training voice uses.
TRAIN_VOICES = (
    "en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan",     # accents, default voice
    "en+f1", "en-us+f2", "en-gb-scotland+f3", "en+f5", "en-us+f3",                     # female variants
    "en-us+m1", "en+m2", "en-us+m3", "en-gb-x-rp+m4", "en+m6", "en-gb-scotland+m7",    # male variants
    "en-us+klatt", "en+klatt2", "en-gb-x-rp+klatt4",                                   # Klatt variants
)
TEST_VOICES = ("en-gb-x-rp+f4", "en-us+m5", "en-029")
TRAIN_RATES = (130, 145, 160, 175, 190)     # words per minute (test voices draw from the same grid)
TRAIN_PITCHES = (30, 40, 50, 60, 70)        # espeak's 0..100 scale
TTS_VOICE = "en-us"                          # the one voice the Talker learns to speak with


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or failed to speak; the message says which."""


@dataclass(frozen=True)
class Voice:
    name: str
    rate: int
    pitch: int


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """The espeak-ng engine. The C library keeps state between utterances
    (a pitch-flutter counter, echo buffers), so a clip would depend on every
    clip spoken before it. To make each clip a function of (text, voice, seed)
    alone, :meth:`synth` loads a private copy of the library, speaks, and
    unloads it again (about 4 ms). Get the engine with :meth:`Espeak.get`."""

    _engine: "Espeak | None" = None

    @classmethod
    def get(cls) -> "Espeak":
        if cls._engine is None:
            cls._engine = cls()
        return cls._engine

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as e:
            raise EspeakError("speech synthesis needs the `espeakng-loader` package "
                              "(pip install espeakng-loader); it ships libespeak-ng and its voice data") from e
        src = Path(espeakng_loader.get_library_path())
        self.data_path = espeakng_loader.get_data_path().encode()
        if not src.is_file():
            raise EspeakError(f"libespeak-ng not found at {src} (broken espeakng-loader install?)")
        # a private copy: dlopen of a new path gives fresh static state, and
        # never shares it with other users of the library in this process
        self._tmp = tempfile.TemporaryDirectory(prefix="omni-espeak-")
        self.lib_path = str(Path(self._tmp.name) / "libespeak-ng-omni.so")
        shutil.copyfile(src, self.lib_path)
        self.libc = ctypes.CDLL(None)
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)     # keep a reference: C holds only the pointer
        lib = self._open()
        self.sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path, 0)
        self._close(lib)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {self.sample_rate}) with data at "
                              f"{self.data_path.decode()}")

    def _open(self) -> ctypes.CDLL:
        try:
            lib = ctypes.CDLL(self.lib_path)
        except OSError as e:
            raise EspeakError(f"cannot load libespeak-ng ({self.lib_path}): {e}") from e
        if not hasattr(lib, "espeak_ng_SetRandSeed"):
            raise EspeakError("libespeak-ng lacks espeak_ng_SetRandSeed (espeak-ng >= 1.51 is needed "
                              "for reproducible speech)")
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        return lib

    @staticmethod
    def _close(lib: ctypes.CDLL) -> None:
        import _ctypes

        lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)

    def _collect(self, wav, n, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0                                       # 0 = keep going

    def synth(self, text: str, voice: Voice, seed: int) -> np.ndarray:
        """Speak ``text`` → float32 waveform (T,) at 16 kHz, silence trimmed."""
        lib = self._open()
        try:
            if lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path, 0) != self.sample_rate:
                raise EspeakError("espeak_Initialize failed on reload")
            lib.espeak_SetSynthCallback(self._callback)
            if lib.espeak_SetVoiceByName(voice.name.encode()) != EE_OK:
                raise EspeakError(f"espeak-ng has no voice {voice.name!r}")
            for param, value in ((ESPEAK_RATE, voice.rate), (ESPEAK_PITCH, voice.pitch)):
                if lib.espeak_SetParameter(param, value, 0) != EE_OK:
                    raise EspeakError(f"espeak_SetParameter({param}, {value}) failed for voice {voice.name}")
            self.libc.srand(ctypes.c_uint(seed & 0xFFFFFFFF))
            lib.espeak_ng_SetRandSeed(seed & 0x7FFFFFFF)
            self._chunks = []
            data = text.encode("utf-8")
            err = lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        finally:
            self._close(lib)
        if err != EE_OK:
            raise EspeakError(f"espeak_Synth failed with code {err} for {text!r} ({voice})")
        if not self._chunks:
            raise EspeakError(f"espeak-ng produced no audio for {text!r} ({voice})")
        wave = np.concatenate(self._chunks).astype(np.float32) / 32768.0     # (T,) at 22,050 Hz
        wave = trim_silence(resample(wave, self.sample_rate, SAMPLE_RATE), SAMPLE_RATE)
        return wave * np.float32(PEAK / np.abs(wave).max())      # resampling can overshoot 1.0


def trim_silence(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut leading/trailing samples quieter than :data:`TRIM_LEVEL`, keeping a margin."""
    loud = np.flatnonzero(np.abs(wave) > TRIM_LEVEL)
    if loud.size == 0:
        raise EspeakError("synthesized speech is silent")
    margin = int(TRIM_MARGIN_S * sample_rate)
    return wave[max(0, loud[0] - margin): loud[-1] + 1 + margin]


def pick_voice(rng: np.random.Generator, names: tuple[str, ...]) -> Voice:
    """A voice name with a random rate and pitch from the training grid."""
    return Voice(names[int(rng.integers(len(names)))], int(TRAIN_RATES[rng.integers(len(TRAIN_RATES))]),
                 int(TRAIN_PITCHES[rng.integers(len(TRAIN_PITCHES))]))
