"""Bad data: find it, count it by reason, and stop when there is too much.

Every check returns the records that passed and adds each failure to a
:class:`DataReport` (reason, where, detail). Nothing is dropped silently:
the report travels with the kept records, :meth:`DataReport.summary` prints
the counts, and :meth:`DataReport.check` raises :class:`BadDataError` when
the bad fraction is above the threshold (default 1 %).

The CTC length rule lives here so the ASR stage and the data checks agree:
the tiny audio encoder sees 100 mel frames per second and downsamples 4×,
i.e. about 25 output frames per second (:func:`encoder_frames`), and CTC
needs at least one frame per label plus a blank between each pair of equal
adjacent labels (:func:`ctc_min_frames`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from omni.tokenizer import CharVocab

DEFAULT_THRESHOLD = 0.01

# reasons, as they appear in reports
MISSING_FILE = "missing file"
UNREADABLE_AUDIO = "unreadable audio"
UNREADABLE_IMAGE = "image fails to decode"
UNSUPPORTED_IMAGE = "image mode not supported"
EMPTY_TEXT = "empty transcript/text"
OUT_OF_VOCAB = "characters outside the CTC vocabulary"
TOO_SHORT = "clip too short for its transcript under CTC"
BAD_SEGMENT = "segment outside the audio"


def encoder_frames(num_samples: int, sample_rate: int = 16_000) -> int:
    """Output frames of the tiny audio encoder for a clip: the tiny log-mel's
    frame count (T // hop), then the encoder's own ``output_length`` (⌈⌈n/2⌉/2⌉)."""
    from omni.audio.tiny_mel import MIN_SAMPLES, n_frames
    from omni.models.audio_encoder import output_length

    if sample_rate != 16_000:
        num_samples = int(num_samples * 16_000 / sample_rate)
    if num_samples < MIN_SAMPLES:      # too short for one mel frame: no encoder output at all
        return 0
    return int(output_length(n_frames(num_samples)))


def ctc_min_frames(text: str) -> int:
    """Fewest frames CTC needs for ``text``: L labels + R repeats (``"ll"`` needs a blank between)."""
    repeats = sum(1 for a, b in zip(text, text[1:]) if a == b)
    return len(text) + repeats


def fits_ctc(text: str, num_samples: int, sample_rate: int = 16_000) -> bool:
    return encoder_frames(num_samples, sample_rate) >= ctc_min_frames(text)


class BadDataError(RuntimeError):
    """Too much bad data; ``.report`` holds the counts."""

    def __init__(self, report: "DataReport"):
        super().__init__(report.summary())
        self.report = report


@dataclass
class BadItem:
    reason: str
    where: str        # "file:line" or a path
    detail: str


@dataclass
class DataReport:
    """Counts of good and bad items of one data source."""
    source: str
    threshold: float = DEFAULT_THRESHOLD
    total: int = 0
    bad: list[BadItem] = field(default_factory=list)

    def ok(self) -> None:
        self.total += 1

    def add_bad(self, reason: str, where: str, detail: str) -> None:
        self.total += 1
        self.bad.append(BadItem(reason, where, detail))

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(b.reason for b in self.bad).items()))

    @property
    def bad_fraction(self) -> float:
        return len(self.bad) / self.total if self.total else 0.0

    def summary(self, examples: int = 3) -> str:
        lines = [f"{self.source}: {len(self.bad)} bad of {self.total} "
                 f"({100 * self.bad_fraction:.2f} %, threshold {100 * self.threshold:.2f} %)"]
        for reason, n in self.counts().items():
            lines.append(f"  {n:6d}  {reason}")
            for b in [b for b in self.bad if b.reason == reason][:examples]:
                lines.append(f"          e.g. {b.where}: {b.detail}")
        return "\n".join(lines)

    def check(self) -> "DataReport":
        """Raise :class:`BadDataError` if more than ``threshold`` of the items are bad."""
        if self.total == 0:
            raise BadDataError(self)
        if self.bad_fraction > self.threshold:
            raise BadDataError(self)
        return self


def _audio_samples(path: Path, report: DataReport, where: str) -> tuple[int, int] | None:
    """(frames, sample rate) from the file header, or None after reporting why."""
    import soundfile as sf

    if not path.is_file():
        report.add_bad(MISSING_FILE, where, str(path))
        return None
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        report.add_bad(UNREADABLE_AUDIO, where, f"{path}: {e}")
        return None
    if info.frames == 0:
        report.add_bad(UNREADABLE_AUDIO, where, f"{path}: zero-length audio")
        return None
    return info.frames, info.samplerate


def check_speech(records: list, report: DataReport, vocab: CharVocab | None = None) -> list:
    """ASR/TTS records: file readable, transcript non-empty and in the CTC
    vocabulary, and the clip long enough for its transcript."""
    vocab = vocab or CharVocab()
    kept = []
    for i, r in enumerate(records):
        where = f"{report.source}#{i} ({r.id})"
        if not r.text.strip():
            report.add_bad(EMPTY_TEXT, where, f"transcript of {r.audio} is empty")
            continue
        unknown = vocab.unknown_chars(r.text)
        if unknown:
            report.add_bad(OUT_OF_VOCAB, where, f"{sorted(unknown)!r} in {r.text!r}")
            continue
        got = _audio_samples(r.audio, report, where)
        if got is None:
            continue
        if not fits_ctc(r.text, *got):
            report.add_bad(TOO_SHORT, where, f"{got[0] / got[1]:.2f} s gives {encoder_frames(*got)} frames, "
                                             f"{r.text!r} needs {ctc_min_frames(r.text)}")
            continue
        report.ok()
        kept.append(r)
    return kept


def _image_fault(path: Path) -> tuple[str, str] | None:
    """(reason, detail) if the image at ``path`` is missing, fails to decode or has a mode
    :func:`omni.images.to_rgb` cannot convert; None if it is usable."""
    from PIL import Image, UnidentifiedImageError

    from omni.images import SUPPORTED_MODES

    if not path.is_file():
        return MISSING_FILE, str(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        return UNREADABLE_IMAGE, f"{path}: {e}"
    if mode not in SUPPORTED_MODES:
        return UNSUPPORTED_IMAGE, f"{path}: mode {mode!r} (supported: {sorted(SUPPORTED_MODES)})"
    return None


def check_images(records: list, report: DataReport) -> list:
    """Caption / image-QA records: the image exists, decodes and has a supported mode."""
    kept = []
    for i, r in enumerate(records):
        where = f"{report.source}#{i} ({r.id})"
        text = getattr(r, "caption", None) or getattr(r, "question", "")
        if not text.strip():
            report.add_bad(EMPTY_TEXT, where, f"empty caption/question for {r.image}")
            continue
        fault = _image_fault(r.image)
        if fault is not None:
            report.add_bad(fault[0], where, fault[1])
            continue
        report.ok()
        kept.append(r)
    return kept


def check_audio_qa(records: list, report: DataReport) -> list:
    """Audio-QA records: the audio is readable and the segment lies inside it."""
    kept = []
    for i, r in enumerate(records):
        where = f"{report.source}#{i} ({r.id})"
        if not r.answer.strip() or not r.question.strip():
            report.add_bad(EMPTY_TEXT, where, f"empty question or answer for {r.audio}")
            continue
        got = _audio_samples(r.audio, report, where)
        if got is None:
            continue
        duration = got[0] / got[1]
        if r.segment is not None and r.segment[1] > duration + 1e-3:
            report.add_bad(BAD_SEGMENT, where, f"segment {list(r.segment)} but {r.audio} lasts {duration:.2f} s")
            continue
        report.ok()
        kept.append(r)
    return kept


def check_records(records: list, task: str, source: str, threshold: float = DEFAULT_THRESHOLD) -> tuple[list, DataReport]:
    """Run the checks that fit ``task``; returns (kept records, report). Raises
    :class:`BadDataError` (carrying the report) above ``threshold``."""
    report = DataReport(source, threshold)
    if task in ("asr", "tts"):
        kept = check_speech(records, report)
    elif task in ("caption", "image_qa"):
        kept = check_images(records, report)
    elif task == "audio_qa":
        kept = check_audio_qa(records, report)
    elif task == "text":
        kept = []
        for i, r in enumerate(records):
            if r.text.strip():
                report.ok()
                kept.append(r)
            else:
                report.add_bad(EMPTY_TEXT, f"{source}#{i} ({r.id})", "empty line of text")
    elif task == "sft":
        kept = check_sft(records, report)
    else:
        raise ValueError(f"no checks for task {task!r}")
    report.check()
    return kept, report


def check_sft(records: list, report: DataReport) -> list:
    """Omni dialogues: every image decodes, every audio file is readable."""
    kept = []
    for i, r in enumerate(records):
        where = f"{report.source}#{i} ({r.id})"
        before = len(report.bad)
        for p in r.images:
            fault = _image_fault(p)
            if fault is not None:
                report.add_bad(fault[0], where, fault[1])
                break
        if len(report.bad) == before:
            for p, seg in zip(r.audios, r.segments):
                got = _audio_samples(p, report, where)
                if got is None:
                    break
                if seg is not None and seg[1] > got[0] / got[1] + 1e-3:
                    report.add_bad(BAD_SEGMENT, where, f"segment {list(seg)} but {p} lasts {got[0] / got[1]:.2f} s")
                    break
        if len(report.bad) == before:
            report.ok()
            kept.append(r)
    return kept


def load_checked(path, task: str, threshold: float = DEFAULT_THRESHOLD) -> tuple[list, DataReport]:
    """Read a manifest and check its data: the one entry point for training stages."""
    from omni.data.manifest import read_manifest

    return check_records(read_manifest(path, task), task, str(path), threshold)
