import pytest

from omni.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, BPETokenizer, CharVocab, CTC_BLANK_ID


def test_bos_prepended_and_round_trip(tiny_tokenizer):
    text = "Hello, how are you?"
    ids = tiny_tokenizer.encode(text)
    assert ids[0] == BOS_ID == 1
    assert tiny_tokenizer.decode(ids) == text
    assert tiny_tokenizer.encode(text, add_bos=False) == ids[1:]
    assert tiny_tokenizer.encode(text, add_eos=True)[-1] == EOS_ID


def test_special_ids_are_distinct_and_reserved(tiny_tokenizer):
    assert len({PAD_ID, BOS_ID, EOS_ID, UNK_ID}) == 4
    assert tiny_tokenizer.piece(BOS_ID) == "<s>" and tiny_tokenizer.piece(EOS_ID) == "</s>"


def test_unseen_characters_round_trip_through_bytes(tiny_tokenizer):
    text = "Zebra §42 ünïcode"
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text
    assert UNK_ID not in tiny_tokenizer.encode(text)


def test_vocab_size_is_reported_not_padded(tiny_tokenizer):
    assert 260 < tiny_tokenizer.vocab_size <= 400


def test_missing_model_and_bad_training_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.model"):
        BPETokenizer(tmp_path / "nope.model")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer.train(empty, tmp_path / "t.model")


def test_char_vocab_has_98_symbols_and_round_trips():
    v = CharVocab()
    assert len(v) == 98 and CTC_BLANK_ID == 0
    text = "Hello, World! 42"
    ids = v.encode(text)
    assert min(ids) >= 1 and v.decode(ids) == text
    with pytest.raises(ValueError, match="outside the CTC vocabulary"):
        v.encode("naïve")


def test_ctc_collapse_merges_repeats_and_drops_blanks():
    v = CharVocab()
    a, b = v.encode("ab")
    assert v.ctc_collapse([0, a, a, 0, a, b, b, 0]) == "aab"
