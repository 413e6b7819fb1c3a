"""Issue 13: many voices with held-out ones, SpecAugment and speed perturbation in training only,
CTC prefix beam search (with and without the character n-gram LM), WER."""

import json
import math

import numpy as np
import pytest
import torch

from omni.data import speech
from omni.data.language import world_grammar
from omni.data.synth import SIZES, speech_jobs
from omni.cer import wer
from omni.models.asr import ASRConfig, ASRModel
from omni.models.audio_encoder import AudioEncoderConfig
from omni.models.ctc_decode import EOS, BeamConfig, CharNgramLM, beam_decode, greedy_decode
from omni.tokenizer import CTC_BLANK_ID, CharVocab
from omni.training.ctc import SpecAugment, collate_speech, ctc_loss
from stage_world import ROOT, small_world

TINY = ASRConfig(encoder=AudioEncoderConfig(conv_channels=8, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64))
VOCAB = CharVocab()


def _accent(voice: str) -> str:
    return voice.split("+")[0]


def _variant(voice: str) -> str:
    return voice.split("+")[1] if "+" in voice else ""


# ---------------------------------------------------------------------------
# The voices of the world
# ---------------------------------------------------------------------------
def test_voice_lists_hold_out_a_female_a_male_variant_and_an_accent():
    train, test = set(speech.TRAIN_VOICES), set(speech.TEST_VOICES)
    assert len(train) == len(speech.TRAIN_VOICES) >= 12 and len(test) >= 3 and not train & test
    train_variants, train_accents = {_variant(v) for v in train}, {_accent(v) for v in train}
    new_variants = {_variant(v) for v in test} - train_variants
    assert any(v.startswith("f") for v in new_variants), (test, train_variants)      # a new female variant
    assert any(v.startswith("m") for v in new_variants), (test, train_variants)      # a new male variant
    assert {_accent(v) for v in test} - train_accents, (test, train_accents)         # a new accent


def test_every_voice_speaks():
    engine = speech.Espeak.get()
    for name in speech.TRAIN_VOICES + speech.TEST_VOICES:
        wave = engine.synth("the red ball.", speech.Voice(name, 160, 50), seed=0)
        assert wave.ndim == 1 and wave.size > 1600, name


@pytest.mark.slow
@pytest.mark.timeout(900)     # plans 8,000 medium utterances (grammar samples only, no audio): ~1-5 min
def test_cpu_preset_world_trains_on_twelve_voices_and_tests_on_three_others():
    preset = json.loads((ROOT / "train/configs/audio/cpu.json").read_text())
    size = preset["data"]["world"].rsplit("/", 1)[-1]
    assert size in SIZES, preset["data"]["world"]
    voices = {s: {} for s in ("train", "val", "test")}
    for job in speech_jobs(world_grammar(), SIZES[size], seed=0):
        if job.task != "asr":
            break                                     # ASR jobs come first, then TTS
        voices[job.split][job.voice.name] = voices[job.split].get(job.voice.name, 0) + 1
    held_out = set(speech.TEST_VOICES)
    assert not held_out & (set(voices["train"]) | set(voices["val"])), voices
    assert set(voices["test"]) == held_out, voices["test"]
    assert len(voices["train"]) >= 12 and min(voices["train"].values()) >= 100, voices["train"]
    assert len(voices["test"]) >= 3 and min(voices["test"].values()) >= 100, voices["test"]


def test_card_lists_the_voices_of_each_split(tmp_path_factory):
    world = small_world(tmp_path_factory)
    card = json.loads((world / "card.json").read_text())
    per_voice = card["voices"]["asr_clips_per_voice"]
    rows = {s: [json.loads(ln)["speaker"] for ln in (world / f"asr_{s}.jsonl").read_text().splitlines()]
            for s in ("train", "val", "test")}
    for voice, counts in per_voice.items():
        assert counts == {s: rows[s].count(voice) for s in rows}, voice
        if voice in speech.TEST_VOICES:
            assert counts["train"] == counts["val"] == 0, (voice, counts)
    assert set(per_voice) == set(speech.TRAIN_VOICES) | set(speech.TEST_VOICES)
    md = (world / "card.md").read_text()
    for voice in per_voice:
        role = "held out" if voice in speech.TEST_VOICES else "training"
        assert f"| {voice} | {role} |" in md, voice


# ---------------------------------------------------------------------------
# Augmentation: training only, shapes unchanged
# ---------------------------------------------------------------------------
def _batch():
    torch.manual_seed(0)
    items = [{"mel": torch.randn(60, 128), "labels": torch.tensor(VOCAB.encode("abc"))},
             {"mel": torch.randn(45, 128), "labels": torch.tensor(VOCAB.encode("de"))}]
    return collate_speech(items)


def test_spec_augment_keeps_shapes_and_only_masks_in_training():
    batch, augment = _batch(), SpecAugment(time_masks=2, time_width=10, freq_masks=2, freq_width=16)
    masked = augment(batch["mel"], batch["mel_lengths"])
    assert masked.shape == batch["mel"].shape and not torch.equal(masked, batch["mel"])
    torch.manual_seed(0)
    model = ASRModel(TINY)
    model.eval()
    plain, _ = ctc_loss(model, batch)
    assert torch.equal(ctc_loss(model, batch, augment)[0], plain)           # eval: never masked
    model.train()
    assert not torch.equal(ctc_loss(model, batch, augment)[0], plain)       # training: masked
    assert torch.equal(ctc_loss(model, batch)[0], plain)                    # the model has no dropout of its own


def test_speed_perturbation_changes_length_not_labels(tmp_path_factory):
    from omni.data.manifest import read_manifest
    from omni.training.ctc import SpeechClips
    world = small_world(tmp_path_factory)
    recs = read_manifest(world / "asr_train.jsonl", "asr")[:8]
    plain, fast, slow = SpeechClips(recs), SpeechClips(recs, speeds=(1.1,)), SpeechClips(recs, speeds=(0.9,))
    for i in range(len(recs)):
        n = plain[i]["mel"].shape[0]
        assert torch.equal(fast[i]["labels"], plain[i]["labels"])
        assert fast[i]["mel"].shape[0] == pytest.approx(n / 1.1, abs=2)
        assert slow[i]["mel"].shape[0] == pytest.approx(n / 0.9, abs=2)


def test_ctc_upsample_reads_each_encoder_frame_as_k_ctc_frames():
    """ctc_upsample 2: the same encoder frames, twice the CTC frames; frame t's two label slots are
    CTC frames 2t and 2t + 1, and padding stays past each clip's (doubled) length."""
    torch.manual_seed(0)
    seed_model = ASRModel(TINY)
    up = ASRModel(ASRConfig(encoder=TINY.encoder, ctc_upsample=2))
    up.encoder.load_state_dict(seed_model.encoder.state_dict())
    batch = _batch()
    lp1, n1 = seed_model(batch["mel"], batch["mel_lengths"])
    lp2, n2 = up(batch["mel"], batch["mel_lengths"])
    assert lp2.shape == (lp1.shape[0], 2 * lp1.shape[1], lp1.shape[2]) and torch.equal(n2, 2 * n1)
    x = up.encoder(batch["mel"], batch["mel_lengths"])                           # (B, T', d)
    by_hand = up.ctc_head(x).view(x.shape[0], x.shape[1], 2, -1).log_softmax(-1)  # (B, T', 2, V)
    torch.testing.assert_close(lp2[:, 1::2], by_hand[:, :, 1])
    torch.testing.assert_close(lp2[:, 0::2], by_hand[:, :, 0])
    up.train()
    loss, _ = ctc_loss(up, batch)
    assert torch.isfinite(loss) and loss > 0
    with pytest.raises(ValueError, match="ctc_upsample"):
        ASRConfig(encoder=TINY.encoder, ctc_upsample=0)


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------
def _log_probs(rows: list[dict[str, float]]) -> np.ndarray:
    """Frames given as {char or "" (blank): probability}; the rest share what is left."""
    lp = np.full((len(rows), len(VOCAB)), 0.0)
    for t, row in enumerate(rows):
        rest = (1.0 - sum(row.values())) / (len(VOCAB) - len(row))
        lp[t] = rest
        for ch, p in row.items():
            lp[t, CTC_BLANK_ID if ch == "" else VOCAB.index[ch]] = p
    return np.log(lp)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_without_lm_equals_greedy_on_peaked_posteriors(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(80, len(VOCAB)))
    logits[np.arange(80), rng.integers(0, len(VOCAB), 80)] += 12.0       # one label near 1 per frame
    lp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    greedy = greedy_decode(lp, VOCAB)
    assert len(greedy) > 10 and beam_decode(lp, VOCAB, BeamConfig(beam=8)) == greedy


def test_beam_finds_the_transcript_no_single_frame_path_spells():
    # "a" has probability 0.4·0.4 + 0.4·0.6 + 0.6·0.4 = 0.64 over three frame paths; greedy takes
    # the single best path (blank, blank: 0.36) and hears nothing
    lp = _log_probs([{"": 0.6, "a": 0.4}, {"": 0.6, "a": 0.4}])
    assert greedy_decode(lp, VOCAB) == ""
    assert beam_decode(lp, VOCAB, BeamConfig(beam=4)) == "a"


def test_the_language_model_resolves_what_the_acoustics_leave_open():
    lm = CharNgramLM.train(["the cat sat.", "the cat ran.", "a cat sat."] * 5, order=4)
    frames = []
    for ch in "the cXt sat.":             # the vowel of "cat" is a coin toss between a and o, o slightly ahead
        frames += [{"a": 0.45, "o": 0.5} if ch == "X" else {ch: 0.95}, {"": 0.95}]
    lp = _log_probs(frames)
    assert greedy_decode(lp, VOCAB) == "the cot sat."
    assert beam_decode(lp, VOCAB, BeamConfig(beam=4)) == "the cot sat."
    assert beam_decode(lp, VOCAB, BeamConfig(beam=4, alpha=1.0), lm=lm) == "the cat sat."


def test_ngram_is_a_distribution_and_prefers_training_text():
    lm = CharNgramLM.train(["the red ball is big.", "the blue ball is small."], order=5)
    for prefix in ("", "the b", "zzz"):
        ctx = lm.context(prefix)
        total = sum(math.exp(lm.logp(ctx, c)) for c in VOCAB.chars) + math.exp(lm.logp(ctx, EOS))
        assert total == pytest.approx(1.0, abs=1e-9), prefix
    assert lm.sentence_logp("the red ball is small.") > lm.sentence_logp("hte erd lbal si lsaml.")
    with pytest.raises(ValueError, match="outside the CTC vocabulary"):
        CharNgramLM.train(["caf\u00e9"])


def test_wer_counts_words_after_normalisation():
    assert wer(["The red ball."], ["the red ball"]) == 0.0
    assert wer(["the red ball", "a cat"], ["the bed ball", "a"]) == pytest.approx(2 / 5)
