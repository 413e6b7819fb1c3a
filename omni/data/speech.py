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
such as ``+f2``) and from the C library's ``rand()`` (fricatives); we seed
both (``espeak_ng_SetRandSeed``, ``srand``) before each utterance, so the same
sequence of calls gives byte-identical audio in every process.

If the library or its data cannot be loaded, :class:`EspeakError` says so; the
synthetic world never substitutes silence or a tone for speech.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from omni.audio.io import SAMPLE_RATE, resample

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE, ESPEAK_PITCH = 1, 3
EE_OK = 0
TRIM_LEVEL = 0.01             # |sample| below this at either end counts as silence
TRIM_MARGIN_S = 0.05          # silence kept at each end after trimming

# Voices are "language[+variant]". The test voice is never used for train or val.
TRAIN_VOICES = ("en", "en-us", "en+f3", "en-us+m3", "en+f2", "en-gb-scotland+m2")
TEST_VOICES = ("en-gb-x-rp+f4",)
TRAIN_RATES = (145, 160, 175, 190)          # words per minute
TRAIN_PITCHES = (35, 45, 55, 65)            # espeak's 0..100 scale
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
    """One espeak-ng engine per process (the C library keeps global state);
    get it with :meth:`Espeak.get`."""

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
        lib_path, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        try:
            self.lib = ctypes.CDLL(lib_path)
            self.libc = ctypes.CDLL(None)
        except OSError as e:
            raise EspeakError(f"cannot load libespeak-ng from {lib_path}: {e}") from e
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        if not hasattr(lib, "espeak_ng_SetRandSeed"):
            raise EspeakError(f"{lib_path} lacks espeak_ng_SetRandSeed (espeak-ng >= 1.51 needed for "
                              "reproducible speech)")
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {self.sample_rate}) with data at {data_path}")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)     # keep a reference: C holds only the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0                                       # 0 = keep going

    def synth(self, text: str, voice: Voice, seed: int) -> np.ndarray:
        """Speak ``text`` → float32 waveform (T,) at 16 kHz, silence trimmed."""
        lib = self.lib
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
        if err != EE_OK:
            raise EspeakError(f"espeak_Synth failed with code {err} for {text!r} ({voice})")
        if not self._chunks:
            raise EspeakError(f"espeak-ng produced no audio for {text!r} ({voice})")
        wave = np.concatenate(self._chunks).astype(np.float32) / 32768.0     # (T,) at 22,050 Hz
        return trim_silence(resample(wave, self.sample_rate, SAMPLE_RATE), SAMPLE_RATE)


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
