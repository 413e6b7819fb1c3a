"""Text ↔ token ids: the Thinker's SentencePiece BPE tokenizer and the CTC
character vocabulary of the ASR head.

Special ids are named constants, never magic numbers. As in seed 004,
``encode`` prepends BOS: ``encode("Hello, how are you?") == [1, ...]``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
UNK_ID = 3
DEFAULT_VOCAB_SIZE = 5000
# Where a prompt's media go: each marker in the text is replaced by that medium's embeddings
# (omni.data.dialogue for μOmni; MuFun's "<audio>" becomes one -200 id, omni.mufun.fusion).
IMAGE_MARKER = "<image>"
AUDIO_MARKER = "<audio>"


class BPETokenizer:
    """A SentencePiece BPE model loaded from ``<path>.model``."""

    def __init__(self, model_path: str | os.PathLike):
        import sentencepiece as spm

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {path} (train one with `omni tokenizer train`)")
        self.path = path
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: empty file (expected a SentencePiece tokenizer model)")
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(path))
        except (RuntimeError, OSError) as err:           # sentencepiece: "could not parse ModelProto ..."
            raise ValueError(f"{path}: not a SentencePiece tokenizer model, truncated or corrupt ({err})") from err
        got = (self.sp.pad_id(), self.sp.bos_id(), self.sp.eos_id(), self.sp.unk_id())
        if got != (PAD_ID, BOS_ID, EOS_ID, UNK_ID):
            raise ValueError(f"{path}: special ids (pad, bos, eos, unk) are {got}, "
                             f"expected {(PAD_ID, BOS_ID, EOS_ID, UNK_ID)}")

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = False) -> list[int]:
        ids = self.sp.encode(text, out_type=int)
        return ([BOS_ID] if add_bos else []) + ids + ([EOS_ID] if add_eos else [])

    def decode(self, ids) -> str:
        """Drop special ids (pad/bos/eos), then detokenize."""
        ids = [int(i) for i in ids if int(i) not in (PAD_ID, BOS_ID, EOS_ID)]
        return self.sp.decode(ids)

    def piece(self, i: int) -> str:
        return self.sp.id_to_piece(int(i))

    @staticmethod
    def train(text_file: str | os.PathLike, out_path: str | os.PathLike,
              vocab_size: int = DEFAULT_VOCAB_SIZE, quiet: bool = True) -> "BPETokenizer":
        """Train a BPE model on ``text_file`` (one sentence a line), write it to
        ``out_path`` (a ``.model`` file) and return it.

        ``vocab_size`` is an upper bound: a small corpus (the synthetic world's
        grammar knows a few hundred words) cannot fill 5000 pieces, so the
        tokenizer keeps what the corpus supports and :attr:`vocab_size` reports
        it. Byte fallback means every string encodes, without <unk>.
        """
        import sentencepiece as spm

        text_file, out_path = Path(text_file), Path(out_path)
        if not text_file.is_file():
            raise FileNotFoundError(f"tokenizer training text not found: {text_file}")
        if text_file.stat().st_size == 0:
            raise ValueError(f"tokenizer training text is empty: {text_file}")
        if out_path.suffix != ".model":
            raise ValueError(f"tokenizer output must end in .model, got {out_path}")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            input=str(text_file), model_writer=model, model_type="bpe", vocab_size=vocab_size,
            hard_vocab_limit=False, byte_fallback=True, character_coverage=1.0,
            pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
            num_threads=2, minloglevel=2 if quiet else 0, input_sentence_size=2_000_000,
            shuffle_input_sentence=True)
        tmp = out_path.with_suffix(".model.tmp")
        tmp.write_bytes(model.getvalue())
        os.replace(tmp, out_path)
        return BPETokenizer(out_path)


# ---------------------------------------------------------------------------
# The CTC character vocabulary (98 symbols): blank + printable ASCII + two
# typographic marks common in real transcripts.
# ---------------------------------------------------------------------------
CTC_BLANK_ID = 0
CTC_CHARS = "".join(chr(c) for c in range(32, 127)) + "\u2019\u2014"


class CharVocab:
    """id 0 is the CTC blank; ids 1..97 are the characters of :data:`CTC_CHARS`."""

    def __init__(self, chars: str = CTC_CHARS):
        if len(set(chars)) != len(chars):
            raise ValueError("CharVocab characters must be unique")
        self.chars = chars
        self.index = {c: i + 1 for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.chars) + 1

    def unknown_chars(self, text: str) -> set[str]:
        return {c for c in text if c not in self.index}

    def encode(self, text: str) -> list[int]:
        bad = self.unknown_chars(text)
        if bad:
            raise ValueError(f"characters outside the CTC vocabulary: {sorted(bad)!r} in {text!r}")
        return [self.index[c] for c in text]

    def decode(self, ids) -> str:
        """Plain decode of label ids (no blank allowed)."""
        out = []
        for i in ids:
            i = int(i)
            if not 1 <= i < len(self):
                raise ValueError(f"CTC label id {i} outside [1, {len(self)})")
            out.append(self.chars[i - 1])
        return "".join(out)

    def ctc_collapse(self, ids) -> str:
        """Greedy CTC decoding: merge repeats, then drop blanks."""
        out, prev = [], None
        for i in ids:
            i = int(i)
            if i != prev and i != CTC_BLANK_ID:
                out.append(self.chars[i - 1])
            prev = i
        return "".join(out)
