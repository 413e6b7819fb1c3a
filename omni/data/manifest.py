"""Typed records and the JSONL manifests that hold them.

A manifest is one JSON object a line. Media paths inside it are relative to
the manifest's folder; :func:`read_manifest` resolves them and returns typed
records, checking every field and naming ``file:line`` on any error. The
schema of each task (see docs/data.md) is the dataclass below it, read
field by field: an unknown or missing key is an error, never a default.

    task        record            fields (type)
    text        TextRecord        id, text, bits (float | null)
    asr, tts    SpeechRecord      id, audio (path), text, duration (s), speaker
    caption     CaptionRecord     id, image (path), caption
    image_qa    ImageQARecord     id, image (path), question, answer
    audio_qa    AudioQARecord     id, audio (path), question, answer, segment ([start, end] s | null)
    sft         SftRecord         id, messages [{role, content}], images [path], audios [path],
                                  segments [[start, end] | null, one per audio]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

from omni.tokenizer import AUDIO_MARKER, IMAGE_MARKER  # noqa: F401  (manifests carry them)

ROLES = ("system", "user", "assistant")


class ManifestError(ValueError):
    """A manifest line that does not follow its task's schema (message names file:line)."""


@dataclass(frozen=True)
class TextRecord:
    id: str
    text: str
    bits: float | None        # -log2 p(text) under the synthetic grammar; null for real corpora


@dataclass(frozen=True)
class SpeechRecord:
    id: str
    audio: Path
    text: str
    duration: float | None    # seconds; null when a real-format adapter has not measured it
    speaker: str


@dataclass(frozen=True)
class CaptionRecord:
    id: str
    image: Path
    caption: str


@dataclass(frozen=True)
class ImageQARecord:
    id: str
    image: Path
    question: str
    answer: str


@dataclass(frozen=True)
class AudioQARecord:
    id: str
    audio: Path
    question: str
    answer: str
    segment: tuple[float, float] | None   # [start, end] in seconds; null = the whole file


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class SftRecord:
    """One dialogue. Each ``<image>`` / ``<audio>`` marker in the user turns
    stands for the next path of ``images`` / ``audios``, in order."""
    id: str
    messages: tuple[Message, ...]
    images: tuple[Path, ...]
    audios: tuple[Path, ...]
    segments: tuple[tuple[float, float] | None, ...]   # one per audio; None = the whole file


TASKS: dict[str, type] = {"text": TextRecord, "asr": SpeechRecord, "tts": SpeechRecord,
                          "caption": CaptionRecord, "image_qa": ImageQARecord, "audio_qa": AudioQARecord,
                          "sft": SftRecord}
_PATH_FIELDS = {"audio", "image"}
_PATH_LIST_FIELDS = {"images", "audios"}


def _field(where: str, row: dict, key: str, kind, nullable: bool = False):
    value = row[key]
    if value is None and nullable:
        return None
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ManifestError(f"{where}: field {key!r} must be {kind.__name__}{' or null' if nullable else ''}, "
                            f"got {type(value).__name__} {value!r}")
    if key == "id" and not value.strip():
        raise ManifestError(f"{where}: field 'id' is empty")
    return value     # an empty transcript or caption is bad *data*, counted by omni.data.quality


def parse_record(row: dict, task: str, root: Path, where: str):
    """One manifest row (a dict) → its task's record; paths resolved against ``root``."""
    if task not in TASKS:
        raise ManifestError(f"{where}: unknown task {task!r}; known: {sorted(TASKS)}")
    cls = TASKS[task]
    names = [f.name for f in fields(cls)]
    if not isinstance(row, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing, unknown = sorted(set(names) - set(row)), sorted(set(row) - set(names))
    if missing or unknown:
        raise ManifestError(f"{where}: {task} record has missing keys {missing} and unknown keys {unknown} "
                            f"(schema: {names})")
    out = {}
    for name in names:
        if name in _PATH_FIELDS:
            out[name] = root / _field(where, row, name, str)
        elif name in _PATH_LIST_FIELDS:
            paths = _field(where, row, name, list)
            if not all(isinstance(p, str) and p for p in paths):
                raise ManifestError(f"{where}: {name!r} must be a list of non-empty path strings, got {paths!r}")
            out[name] = tuple(root / p for p in paths)
        elif name in ("bits", "duration"):
            out[name] = _field(where, row, name, float, nullable=True)
        elif name == "segment":
            out[name] = _segment(where, row[name])
        elif name == "segments":
            if not isinstance(row[name], list):
                raise ManifestError(f"{where}: segments must be a list (one [start, end] or null per audio)")
            out[name] = tuple(_segment(where, s) for s in row[name])
        elif name == "messages":
            out[name] = _messages(where, row[name])
        else:
            out[name] = _field(where, row, name, str)
    record = cls(**out)
    if task == "sft":
        check_markers(where, record)
    return record


def _segment(where: str, seg) -> tuple[float, float] | None:
    if seg is None:
        return None
    if (not isinstance(seg, list) or len(seg) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in seg)):
        raise ManifestError(f"{where}: segment must be [start, end] in seconds or null, got {seg!r}")
    start, end = float(seg[0]), float(seg[1])
    if not 0 <= start < end:
        raise ManifestError(f"{where}: segment [{start}, {end}] needs 0 <= start < end")
    return start, end


def _messages(where: str, msgs) -> tuple[Message, ...]:
    if not isinstance(msgs, list) or not msgs:
        raise ManifestError(f"{where}: messages must be a non-empty list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or sorted(m) != ["content", "role"]:
            raise ManifestError(f"{where}: message {i} must be {{'role', 'content'}}, got {m!r}")
        if m["role"] not in ROLES:
            raise ManifestError(f"{where}: message {i} role {m['role']!r} not in {ROLES}")
        if not isinstance(m["content"], str) or not m["content"].strip():
            raise ManifestError(f"{where}: message {i} content must be a non-empty string")
        out.append(Message(m["role"], m["content"]))
    if out[-1].role != "assistant":
        raise ManifestError(f"{where}: the last message must be the assistant's (it is what is learned)")
    return tuple(out)


def check_markers(where: str, r: SftRecord) -> None:
    if len(r.segments) != len(r.audios):
        raise ManifestError(f"{where}: {len(r.segments)} segments for {len(r.audios)} audios (one each, null allowed)")
    for marker, paths, key in ((IMAGE_MARKER, r.images, "images"), (AUDIO_MARKER, r.audios, "audios")):
        n = sum(m.content.count(marker) for m in r.messages if m.role == "user")
        if n != len(paths):
            raise ManifestError(f"{where}: {n} {marker} markers in the user turns but {len(paths)} {key}")
        if any(marker in m.content for m in r.messages if m.role != "user"):
            raise ManifestError(f"{where}: {marker} may appear only in user turns")


def read_manifest(path: str | os.PathLike, task: str) -> list:
    """Read a JSONL manifest → list of typed records (paths resolved)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    root, records = path.parent, []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ManifestError(f"{path}:{lineno}: not UTF-8 text ({e}); a manifest is JSON lines") from e
            if not line.strip():
                raise ManifestError(f"{path}:{lineno}: blank line (one JSON object per line)")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{lineno}: invalid JSON: {e}") from e
            records.append(parse_record(row, task, root, f"{path}:{lineno}"))
    if not records:
        raise ManifestError(f"{path}: empty manifest")
    return records


def record_to_row(record, root: Path) -> dict:
    """The inverse of :func:`parse_record`: paths written relative to ``root``."""
    rel = lambda p: Path(os.path.relpath(p, root)).as_posix()     # noqa: E731
    row = {}
    for f in fields(record):
        v = getattr(record, f.name)
        if f.name in _PATH_FIELDS:
            v = rel(v)
        elif f.name in _PATH_LIST_FIELDS:
            v = [rel(p) for p in v]
        elif f.name == "messages":
            v = [{"role": m.role, "content": m.content} for m in v]
        elif f.name == "segment" and v is not None:
            v = list(v)
        elif f.name == "segments":
            v = [None if x is None else list(x) for x in v]
        row[f.name] = v
    return row


def dumps_row(row: dict) -> str:
    """Canonical JSON for a manifest line (sorted keys, so builds are byte-identical)."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def write_manifest(path: str | os.PathLike, records: list) -> Path:
    """Write typed records as JSONL, paths relative to the manifest's folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(dumps_row(record_to_row(r, path.parent)) + "\n")
    return path
