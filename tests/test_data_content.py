"""Labels agree with content: rendered colours and shapes, synthesized pitches, spoken durations."""

import numpy as np
import pytest

from omni.audio.io import SAMPLE_RATE
from omni.data import music, scenes
from omni.data.quality import ctc_min_frames, encoder_frames


def _one_object_scene(shape, colour, size="large", x=112.0, y=112.0):
    half = scenes.HALF_SIZE[size]
    obj = scenes.SceneObject(shape, colour, size, "middle", x, y, half, scenes.RGB[colour])
    return scenes.Scene((obj,), scenes.BACKGROUND)


def test_red_circle_pixels_are_red_and_round():
    img = np.asarray(scenes.render(_one_object_scene("circle", "red")), dtype=np.float64)
    assert img.shape == (224, 224, 3)
    assert np.allclose(img[112, 112], scenes.RGB["red"], atol=1)
    assert np.allclose(img[5, 5], scenes.BACKGROUND, atol=1)
    red = (img[..., 0] > 150) & (img[..., 1] < 100) & (img[..., 2] < 100)
    r = scenes.HALF_SIZE["large"]
    assert red.sum() == pytest.approx(np.pi * r * r, rel=0.05)
    # anti-aliasing: edge pixels take values between the two colours
    edge = img[112, int(112 + r)]
    assert 30 < edge[1] < 230


def test_shapes_cover_plausible_areas():
    r = scenes.HALF_SIZE["large"]
    expect = {"square": 4 * r * r, "diamond": 2 * r * r, "triangle": 2 * r * r, "circle": np.pi * r * r}
    for shape, area in expect.items():
        img = np.asarray(scenes.render(_one_object_scene(shape, "blue")), dtype=np.float64)
        blue = (img[..., 2] > 150) & (img[..., 0] < 100)
        assert blue.sum() == pytest.approx(area, rel=0.06), shape


def test_sampled_scene_columns_and_caption_agree_with_pixels():
    rng = np.random.default_rng(3)
    for _ in range(10):
        scene = scenes.sample_scene(rng)
        img = np.asarray(scenes.render(scene), dtype=np.float64)
        cap = scenes.caption(scene)
        for o in scene.objects:
            assert f"{o.size} {o.colour} {o.shape} {scenes.COLUMN_PHRASE[o.column]}" in cap
            col = scenes.COLUMNS.index(o.column)
            assert col * 224 / 3 <= o.x < (col + 1) * 224 / 3
            if o.shape in ("circle", "square", "diamond", "cross"):      # centre is inside the shape
                assert np.abs(img[int(o.y), int(o.x)] - o.rgb).max() <= 2
        qa = dict(scenes.questions(scene, rng))
        assert qa["how many objects are there?"] in ("one", "two", "three")


def test_scene_questions_answer_from_the_scene():
    scene = scenes.Scene((scenes.SceneObject("star", "green", "small", "left", 40, 100, 17, scenes.RGB["green"]),
                          scenes.SceneObject("circle", "blue", "large", "right", 180, 100, 32, scenes.RGB["blue"])),
                         scenes.BACKGROUND)
    rng = np.random.default_rng(0)
    for _ in range(5):
        for q, a in scenes.questions(scene, rng):
            if q.startswith("what colour is the"):
                assert a == {"star": "green", "circle": "blue"}[q.split()[-1][:-1]]
            if q.startswith("what shape is"):
                assert a == ("star" if "left" in q else "circle")
            if q.startswith("is there a"):
                pair = tuple(q[len("is there a "):-1].split())
                assert a == ("yes" if pair in {("green", "star"), ("blue", "circle")} else "no")


@pytest.mark.parametrize("instrument", ["sine tone", "square tone", "sawtooth tone", "plucked string"])
def test_note_dominant_frequency_matches_pitch(instrument):
    rng = np.random.default_rng(0)
    for midi in (60, 65, 69, 71):
        snd = music.Sound(instrument, "note", midi, "", 70, "slow", "loud", 2.0)
        w = music.synthesize(snd, rng)
        assert w.shape == (2 * SAMPLE_RATE,) and w.dtype == np.float32
        spec = np.abs(np.fft.rfft(w * np.hanning(len(w))))
        peak = np.argmax(spec) * SAMPLE_RATE / len(w)
        f0 = music.midi_to_hz(midi)
        assert abs(peak - f0) / f0 < 0.015, (instrument, midi, peak, f0)


def test_loudness_and_tempo_labels():
    rng = np.random.default_rng(0)
    quiet = music.synthesize(music.Sound("drum", "beat", 0, "", 150, "fast", "quiet", 2.0), rng)
    loud = music.synthesize(music.Sound("drum", "beat", 0, "", 150, "fast", "loud", 2.0), rng)
    assert np.abs(quiet).max() == pytest.approx(music.LOUDNESS["quiet"], rel=1e-3)
    assert np.abs(loud).max() == pytest.approx(music.LOUDNESS["loud"], rel=1e-3)

    def onsets(w):        # frames where 10 ms energy jumps
        e = (w[: len(w) // 160 * 160].reshape(-1, 160) ** 2).mean(1)
        return int(((e[1:] > 4 * e[:-1] + 1e-6)).sum())
    slow = music.synthesize(music.Sound("drum", "beat", 0, "", 60, "slow", "loud", 2.0), rng)
    assert onsets(loud) > onsets(slow) >= 1


def test_melody_direction():
    rng = np.random.default_rng(0)
    up = music.Sound("sine tone", "melody", 60, "up", 120, "fast", "loud", 2.0)
    down = music.Sound("sine tone", "melody", 60, "down", 120, "fast", "loud", 2.0)
    assert [up.pitches(b)[0] for b in range(4)] == [60, 62, 64, 65]
    assert [down.pitches(b)[0] for b in range(4)] == [72, 71, 69, 67]
    assert dict(music.questions(up))["is the melody going up or down?"] == "up"
    assert music.synthesize(up, rng).shape == (2 * SAMPLE_RATE,)


def test_espeak_clip_duration_is_plausible():
    from omni.data.speech import TEST_VOICES, TRAIN_VOICES, Espeak, Voice

    engine = Espeak.get()
    for text in ("the dog rests.", "there are four purple cats in the old garden."):
        for name in (TRAIN_VOICES[0], TEST_VOICES[0]):
            w = engine.synth(text, Voice(name, 175, 50), seed=1)
            seconds = len(w) / SAMPLE_RATE
            chars_per_s = len(text) / seconds
            assert 6 < chars_per_s < 25, (text, name, seconds)
            assert encoder_frames(len(w)) >= ctc_min_frames(text)
            assert 0.05 < np.abs(w).max() <= 1.0
    faster = engine.synth("there are four purple cats in the old garden.", Voice("en", 250, 50), seed=1)
    slower = engine.synth("there are four purple cats in the old garden.", Voice("en", 120, 50), seed=1)
    assert len(faster) < len(slower)


def test_espeak_is_reproducible_with_its_seed():
    from omni.data.speech import Espeak, Voice

    engine = Espeak.get()
    a = engine.synth("the small fox sleeps.", Voice("en+f3", 160, 45), seed=7)
    engine.synth("something else in between.", Voice("en-us", 190, 60), seed=3)
    b = engine.synth("the small fox sleeps.", Voice("en+f3", 160, 45), seed=7)
    assert np.array_equal(a, b)


def test_unknown_voice_is_a_clear_error():
    from omni.data.speech import Espeak, EspeakError, Voice

    with pytest.raises(EspeakError, match="no voice"):
        Espeak.get().synth("hello.", Voice("xx-nonexistent", 175, 50), seed=0)
