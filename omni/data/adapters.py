"""Real-format adapters: read datasets a user has on disk into the same typed
records the synthetic manifests give (``omni.data.manifest``).

    plain text          read_text_corpus(file_or_folder)            → [TextRecord]
    ASR CSV / JSONL     read_asr_csv(path), read_asr_jsonl(path)      → [SpeechRecord]
    LibriSpeech         read_librispeech(root)   (*/*/*.trans.txt)   → [SpeechRecord]
    LJSpeech            read_ljspeech(root)  (metadata.csv + wavs/)  → [SpeechRecord]
    COCO captions       read_coco_captions(json, image_dir)         → [CaptionRecord]
    caption JSONL       read_caption_jsonl(path)                    → [CaptionRecord]
    image-QA JSONL      read_image_qa_jsonl(path)                   → [ImageQARecord]
    MuFun conversations read_mufun_conversations(json, audio_root)  → [SftRecord]

Adapters check the *format* (a missing column, a caption for an unknown image
id) and raise :class:`~omni.data.manifest.ManifestError` naming the file and
the item. They do not judge the *data*: missing audio, empty transcripts and
undecodable images are counted by ``omni.data.quality.check_records``, which
every loader runs next. Relative media paths are taken relative to the file
that names them. Keys a format may carry beyond those read here are ignored.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from omni.data.manifest import (CaptionRecord, ImageQARecord, ManifestError, Message, SftRecord, SpeechRecord,
                                TextRecord, check_markers)


def _need_file(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    return path


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------
def read_text_corpus(path: str | os.PathLike, pattern: str = "*.txt") -> list[TextRecord]:
    """One record per non-blank line of a file, or of every ``pattern`` file
    under a folder (sorted, recursive). Blank lines separate paragraphs; they
    are layout, not items."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob(pattern))
        if not files:
            raise FileNotFoundError(f"no {pattern} files under {path}")
    else:
        files = [_need_file(path)]
    out = []
    for f in files:
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                out.append(TextRecord(id=f"{f.name}:{lineno}", text=line.strip(), bits=None))
    return out


# ---------------------------------------------------------------------------
# Speech
# ---------------------------------------------------------------------------
def read_asr_csv(path: str | os.PathLike, audio_col: str = "audio", text_col: str = "text",
                 speaker_col: str | None = None, delimiter: str = ",") -> list[SpeechRecord]:
    """A CSV/TSV with a header row naming the audio-path and transcript columns."""
    path = _need_file(Path(path))
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        cols = reader.fieldnames or []
        for c in (audio_col, text_col) + ((speaker_col,) if speaker_col else ()):
            if c not in cols:
                raise ManifestError(f"{path}: no column {c!r} in header {cols}")
        out = []
        for lineno, row in enumerate(reader, 2):
            if row[audio_col] is None or row[text_col] is None:
                raise ManifestError(f"{path}:{lineno}: row has fewer fields than the header")
            out.append(SpeechRecord(id=f"{path.name}:{lineno}", audio=path.parent / row[audio_col],
                                    text=row[text_col], duration=None,
                                    speaker=row[speaker_col] if speaker_col else ""))
    return out


def _jsonl_rows(path: Path, keys: tuple[str, ...]):
    """(line number, object) for each non-blank line of a JSONL file that has every key in ``keys``;
    invalid JSON or a missing key is a ManifestError naming file:line."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{lineno}: invalid JSON: {e}") from e
            for k in keys:
                if k not in row:
                    raise ManifestError(f"{path}:{lineno}: no key {k!r} (keys: {sorted(row)})")
            yield lineno, row


def read_asr_jsonl(path: str | os.PathLike, audio_key: str = "audio", text_key: str = "text",
                   speaker_key: str | None = None) -> list[SpeechRecord]:
    """JSON lines with an audio path and a transcript (e.g. NeMo-style manifests
    with ``audio_key="audio_filepath"``)."""
    path = _need_file(Path(path))
    keys = (audio_key, text_key) + ((speaker_key,) if speaker_key else ())
    return [SpeechRecord(id=f"{path.name}:{lineno}", audio=path.parent / row[audio_key], text=str(row[text_key]),
                         duration=None, speaker=str(row[speaker_key]) if speaker_key else "")
            for lineno, row in _jsonl_rows(path, keys)]


def read_librispeech(root: str | os.PathLike, audio_ext: str = ".flac") -> list[SpeechRecord]:
    """LibriSpeech layout: ``root/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``,
    each line ``<utterance-id> <TRANSCRIPT>``, audio at ``<utterance-id>.flac``
    beside it. Transcripts are kept as written (upper case)."""
    root = Path(root)
    files = sorted(root.rglob("*.trans.txt"))
    if not files:
        raise FileNotFoundError(f"no *.trans.txt files under {root} (not a LibriSpeech folder?)")
    out = []
    for f in files:
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, text = line.partition(" ")
            if "-" not in uid:
                raise ManifestError(f"{f}:{lineno}: expected '<speaker>-<chapter>-<n> TEXT', got {line[:60]!r}")
            out.append(SpeechRecord(id=uid, audio=f.parent / f"{uid}{audio_ext}", text=text.strip(),
                                    duration=None, speaker=uid.split("-")[0]))
    return out


LJSPEECH_SPEAKER = "LJ"          # LJSpeech is one reader (Linda Johnson)


def read_ljspeech(root: str | os.PathLike) -> list[SpeechRecord]:
    """LJSpeech layout: ``root/metadata.csv`` with lines ``<id>|<transcript>|<normalised transcript>``
    (``|``-separated, no header, no quoting) and audio at ``root/wavs/<id>.wav``. The normalised
    column (numbers and abbreviations spelled out) is the transcript; a line without one uses the second."""
    root = Path(root)
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"no metadata.csv in {root} (not an LJSpeech folder?)")
    out = []
    for lineno, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("|")
        if len(cols) not in (2, 3) or not cols[0].strip():
            raise ManifestError(f"{meta}:{lineno}: expected 'id|transcript|normalised transcript', "
                                f"got {len(cols)} fields: {line[:60]!r}")
        text = cols[2] if len(cols) == 3 and cols[2].strip() else cols[1]
        uid = cols[0].strip()
        out.append(SpeechRecord(id=uid, audio=root / "wavs" / f"{uid}.wav", text=text.strip(), duration=None,
                                speaker=LJSPEECH_SPEAKER))
    return out


# ---------------------------------------------------------------------------
# Image–caption
# ---------------------------------------------------------------------------
def read_coco_captions(json_path: str | os.PathLike, image_dir: str | os.PathLike) -> list[CaptionRecord]:
    """COCO ``captions_*.json``: ``images`` [{id, file_name}] and ``annotations``
    [{id, image_id, caption}]; one record per caption."""
    json_path, image_dir = _need_file(Path(json_path)), Path(image_dir)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    for key in ("images", "annotations"):
        if key not in data:
            raise ManifestError(f"{json_path}: no {key!r} list (keys: {sorted(data)})")
    files = {}
    for i, im in enumerate(data["images"]):
        if "id" not in im or "file_name" not in im:
            raise ManifestError(f"{json_path}: images[{i}] needs 'id' and 'file_name', got {sorted(im)}")
        files[im["id"]] = im["file_name"]
    out = []
    for i, ann in enumerate(data["annotations"]):
        if "image_id" not in ann or "caption" not in ann:
            raise ManifestError(f"{json_path}: annotations[{i}] needs 'image_id' and 'caption', got {sorted(ann)}")
        if ann["image_id"] not in files:
            raise ManifestError(f"{json_path}: annotations[{i}] names image_id {ann['image_id']} "
                                f"that is not in 'images'")
        out.append(CaptionRecord(id=str(ann.get("id", f"ann{i}")), image=image_dir / files[ann["image_id"]],
                                 caption=ann["caption"].strip()))
    return out


def read_caption_jsonl(path: str | os.PathLike, image_key: str = "image",
                       caption_key: str = "caption") -> list[CaptionRecord]:
    path = _need_file(Path(path))
    return [CaptionRecord(id=f"{path.name}:{lineno}", image=path.parent / row[image_key],
                          caption=str(row[caption_key]).strip())
            for lineno, row in _jsonl_rows(path, (image_key, caption_key))]


def read_image_qa_jsonl(path: str | os.PathLike, image_key: str = "image", question_key: str = "question",
                        answer_key: str = "answer") -> list[ImageQARecord]:
    """JSON lines with an image path (relative to the file), a question and its answer (VQA-style)."""
    path = _need_file(Path(path))
    return [ImageQARecord(id=str(row.get("id", f"{path.name}:{lineno}")), image=path.parent / row[image_key],
                          question=str(row[question_key]).strip(), answer=str(row[answer_key]).strip())
            for lineno, row in _jsonl_rows(path, (image_key, question_key, answer_key))]


# ---------------------------------------------------------------------------
# MuFun-style conversations
# ---------------------------------------------------------------------------
MUFUN_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _mufun_segments(where: str, item: dict, n_audio: int) -> tuple:
    """A segment as ``"segment": [start, end]`` (one audio) or a list of them (one
    per audio), or as ``audio_start`` / ``audio_end`` seconds (seed 002's form)."""
    if "segment" in item and ("audio_start" in item or "audio_end" in item):
        raise ManifestError(f"{where}: give either 'segment' or 'audio_start'/'audio_end', not both")
    if "audio_start" in item or "audio_end" in item:
        seg = [item.get("audio_start", 0.0), item["audio_end"]] if "audio_end" in item else None
        if seg is None:
            raise ManifestError(f"{where}: 'audio_start' without 'audio_end'")
        raw = [seg]
    else:
        raw = item.get("segment")
        if raw is None:
            return (None,) * n_audio
        if raw and not isinstance(raw[0], list):
            raw = [raw]
    if len(raw) != n_audio:
        raise ManifestError(f"{where}: {len(raw)} segments for {n_audio} audio files")
    out = []
    for s in raw:
        if s is None:
            out.append(None)
            continue
        if (not isinstance(s, list) or len(s) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in s)
                or not 0 <= s[0] < s[1]):
            raise ManifestError(f"{where}: segment {s!r} must be [start, end] seconds with 0 <= start < end")
        out.append((float(s[0]), float(s[1])))
    return tuple(out)


def read_mufun_conversations(json_path: str | os.PathLike, audio_root: str | os.PathLike | None = None
                             ) -> list[SftRecord]:
    """MuFun / LLaVA-style JSON: a list of ``{"id", "audio": path | [paths],
    "conversations": [{"from": "human", "value": "<audio>\\n..."}, {"from": "gpt", ...}]}``
    with an optional segment. Audio paths are relative to ``audio_root``
    (default: the JSON file's folder)."""
    json_path = _need_file(Path(json_path))
    root = Path(audio_root) if audio_root is not None else json_path.parent
    data = json.loads(json_path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ManifestError(f"{json_path}: expected a JSON list of conversations, got {type(data).__name__}")
    out = []
    for i, item in enumerate(data):
        where = f"{json_path}[{i}]"
        if not isinstance(item, dict) or "conversations" not in item:
            raise ManifestError(f"{where}: needs a 'conversations' list")
        audio = item.get("audio", [])
        audios = [audio] if isinstance(audio, str) else audio
        if not isinstance(audios, list) or not all(isinstance(a, str) and a for a in audios):
            raise ManifestError(f"{where}: 'audio' must be a path or a list of paths, got {audio!r}")
        msgs = []
        for k, turn in enumerate(item["conversations"]):
            if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
                raise ManifestError(f"{where}: conversations[{k}] needs 'from' and 'value'")
            if turn["from"] not in MUFUN_ROLES:
                raise ManifestError(f"{where}: conversations[{k}] speaker {turn['from']!r} not in {sorted(MUFUN_ROLES)}")
            msgs.append(Message(MUFUN_ROLES[turn["from"]], str(turn["value"])))
        if not msgs or msgs[-1].role != "assistant":
            raise ManifestError(f"{where}: the conversation must end with the assistant ('gpt') turn")
        rec = SftRecord(id=str(item.get("id", f"{json_path.name}[{i}]")), messages=tuple(msgs), images=(),
                        audios=tuple(root / a for a in audios), segments=_mufun_segments(where, item, len(audios)))
        check_markers(where, rec)
        out.append(rec)
    return out

