"""The audio stage's optional sound-attribute head: description parsing, pooling, loss, lockstep batches."""

import numpy as np
import pytest
import torch

from omni.data.music import SOUND_ATTRIBUTES, describe, sample_sound, sound_labels
from omni.models.asr import ASRConfig, ASRModel
from omni.models.audio_encoder import AudioEncoderConfig
from omni.models.sound_head import SoundAttributeHead
from omni.training.data import PairedBatches, ShuffledBatches
from omni.training.sounds import SOUND_CLASSES, sound_loss


def test_sound_labels_invert_describe_on_sampled_sounds():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        s = sample_sound(rng)
        labels = sound_labels(describe(s))
        assert (labels["instrument"], labels["kind"], labels["speed"], labels["loudness"]) == \
               (s.instrument, s.kind, s.speed, s.loudness)
        assert labels["quality"] == (s.quality or "-")
        assert (labels["note"] == "-") == (s.kind in ("melody", "beat"))
        seen.add(s.kind)
    assert seen == {"note", "chord", "melody", "beat"}
    assert SOUND_CLASSES == [len(v) for v in SOUND_ATTRIBUTES.values()]


@pytest.mark.parametrize("text", ["a loud kazoo plays a beat at a fast tempo", "a loud drum plays a tune at a fast tempo",
                                  "a loud drum plays a beat"])
def test_a_description_describe_cannot_make_is_named(text):
    with pytest.raises(ValueError, match="a loud"):
        sound_labels(text)


def test_head_pools_only_the_valid_frames():
    head = SoundAttributeHead(d_in=4, classes=(3, 2))
    frames = torch.randn(2, 6, 4)
    lengths = torch.tensor([6, 3])
    out = head(frames, lengths)
    assert out.shape == (2, 5) and [p.shape[-1] for p in head.split(out)] == [3, 2]
    padded = frames.clone()
    padded[1, 3:] = 1e4                                       # garbage in the padding changes nothing
    assert torch.allclose(head(padded, lengths), out)
    assert torch.allclose(head(frames[1:, :3], lengths[1:]), out[1:], atol=1e-6)


def tiny(sound: bool) -> ASRModel:
    enc = AudioEncoderConfig(conv_channels=8, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64)
    return ASRModel(ASRConfig(encoder=enc, sound_classes=SOUND_CLASSES if sound else None))


def test_no_head_is_named():
    with pytest.raises(ValueError, match="no sound head"):
        tiny(False).sound_logits(torch.randn(1, 40, 128), torch.tensor([40]))


def test_a_tiny_encoder_learns_loud_from_quiet():
    torch.manual_seed(0)
    model = tiny(True)
    mel = torch.randn(8, 60, 128) * 0.1
    mel[::2] += 3.0                                           # even clips are "loud"
    labels = torch.zeros(8, len(SOUND_CLASSES), dtype=torch.long)
    labels[::2, 3] = SOUND_ATTRIBUTES["loudness"].index("loud")
    labels[1::2, 3] = SOUND_ATTRIBUTES["loudness"].index("quiet")
    batch = {"mel": mel, "mel_lengths": torch.full((8,), 60), "labels": labels}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = float(sound_loss(model, batch).detach())
    for _ in range(30):
        loss = sound_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * first
    with torch.no_grad():
        loud = model.sound_head.split(model.sound_logits(mel, batch["mel_lengths"]))[3].argmax(-1)
    assert loud.tolist() == labels[:, 3].tolist()


def test_paired_batches_resume_each_source_exactly():
    a = ShuffledBatches(torch.arange(10), 2, seed=1)
    b = ShuffledBatches(torch.arange(100, 107), 3, seed=2)
    paired = PairedBatches(speech=a, sound=b)
    for _ in range(3):
        paired.next_batch()
    state = paired.state_dict()
    want = [paired.next_batch() for _ in range(4)]
    again = PairedBatches(speech=ShuffledBatches(torch.arange(10), 2, seed=1),
                          sound=ShuffledBatches(torch.arange(100, 107), 3, seed=2))
    again.load_state_dict(state)
    got = [again.next_batch() for _ in range(4)]
    assert all(torch.equal(w[k], g[k]) for w, g in zip(want, got) for k in ("speech", "sound"))
    with pytest.raises(ValueError, match="sources"):
        PairedBatches(speech=a).load_state_dict(state)


def test_audio_stage_with_the_sound_head_logs_its_accuracies_and_exports_an_encoder(tmp_path_factory):
    import json
    from omni.models.omni_model import OmniConfig, OmniModel
    from omni.stages.omni_sft import SOURCES
    from omni.training import read_metrics
    from omni.training.warm_start import load_part
    from stage_world import ROOT, run_stage, small_world
    world = small_world(tmp_path_factory)
    preset = json.loads((ROOT / "train/configs/audio/smoke.json").read_text())
    preset["model"]["sound_classes"] = SOUND_CLASSES
    preset["data"].update({"sound_weight": 1.0, "sound_batch_size": 8, "val_sounds": 16})
    preset["train"]["max_steps"] = 15
    cfg = tmp_path_factory.mktemp("sound") / "smoke_sound.json"
    cfg.write_text(json.dumps(preset))
    out = cfg.parent / "run"
    assert run_stage("audio", ["--config", str(cfg), "--data", str(world), "--out", str(out), "--device", "cpu"]) == 0
    evals = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "eval"]
    assert all(0 <= evals[-1][f"val_sound_{a}_acc"] <= 1 for a in SOUND_ATTRIBUTES), evals[-1]
    # the omni model takes only the encoder (the head's weights are left behind, strictly)
    enc = AudioEncoderConfig(**preset["model"]["encoder"])
    omni = OmniModel(OmniConfig(audio=enc))
    load_part(omni.audio_encoder, out / "export", SOURCES["audio_encoder"], enc)
    preset_omni = json.loads((ROOT / "train/configs/audio/cpu_omni.json").read_text())
    assert preset_omni["model"]["sound_classes"] == SOUND_CLASSES and preset_omni["data"]["sound_weight"] > 0
