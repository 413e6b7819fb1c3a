"""A two-turn conversation about two media: the second answer is about the second medium.

A real OmniModel (tiny sizes) is trained here, through the stage's own loss
(:func:`omni.training.sft.sft_loss`) and the dialogue template, on a toy world
it can learn in seconds: pictures of one colour ("what colour is it?") and
noise clips that are loud or quiet ("is it loud or quiet?"), in one- and
two-turn dialogues (the loss on the last answer only, as in omni_sft). On
held-out pictures and clips it must then answer, through
:func:`omni.pipelines.chat.converse`, the second question about the second
medium — not the first one, which is still in its context.
"""

import numpy as np
import pytest
import torch

from omni.audio.tiny_mel import log_mel
from omni.data.dialogue import DialogueExample, build_parts
from omni.data.manifest import Message
from omni.images import normalize
from omni.models.audio_encoder import AudioEncoderConfig
from omni.models.omni_model import OmniConfig, OmniModel
from omni.models.thinker import ThinkerConfig
from omni.models.vision import VisionConfig
from omni.pipelines.chat import converse
from omni.tokenizer import BPETokenizer

COLOURS = {"red": (220, 30, 30), "green": (30, 165, 50), "blue": (35, 75, 225), "yellow": (240, 210, 20)}
LOUDNESS = {"loud": 0.7, "quiet": 0.05}
SIZE = 32
SEE, HEAR = "<image>\nwhat colour is it?", "<audio>\nis it loud or quiet?"


def picture(colour: str, rng: np.random.Generator) -> torch.Tensor:
    rgb = np.clip(np.array(COLOURS[colour]) + rng.integers(-25, 26, 3), 0, 255)
    return normalize(np.broadcast_to(rgb.astype(np.uint8), (SIZE, SIZE, 3)))          # (3, S, S)


def clip(loudness: str, rng: np.random.Generator) -> torch.Tensor:
    wave = rng.uniform(-1, 1, 4000) * LOUDNESS[loudness] * rng.uniform(0.8, 1.0)
    return log_mel(torch.from_numpy(wave.astype(np.float32)))[0]                       # (25, 128)


def sample_turn(rng):
    """(user text, answer, images, mels) of one random turn."""
    if rng.random() < 0.5:
        c = list(COLOURS)[rng.integers(len(COLOURS))]
        return SEE, c, [picture(c, rng)], []
    loud = list(LOUDNESS)[rng.integers(2)]
    return HEAR, loud, [], [clip(loud, rng)]


def dialogue(tok, rng) -> DialogueExample:
    turns = [sample_turn(rng) for _ in range(1 + int(rng.random() < 0.6))]
    msgs = [m for user, answer, _, _ in turns for m in (Message("user", user), Message("assistant", answer))]
    images = [x for t in turns for x in t[2]]
    mels = [x for t in turns for x in t[3]]
    parts, prompt_tokens, answer, _ = build_parts(msgs, tok, images, mels)
    return DialogueExample("toy", parts, prompt_tokens, answer)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from omni.training.sft import sft_loss

    folder = tmp_path_factory.mktemp("chat_toy")
    corpus = folder / "corpus.txt"
    lines = ["user: what colour is it? assistant: " + c for c in COLOURS] + \
            ["user: is it loud or quiet? assistant: " + w for w in LOUDNESS]
    corpus.write_text("\n".join(lines * 20) + "\n")
    tok = BPETokenizer.train(corpus, folder / "tok.model", vocab_size=320)
    torch.manual_seed(0)
    cfg = OmniConfig(thinker=ThinkerConfig(vocab_size=tok.vocab_size, ctx_len=96, d_model=64, n_layers=2,
                                           n_heads=2, ffn_hidden=128),
                     vision=VisionConfig(image_size=SIZE, patch_size=16, d_model=32, n_layers=1, n_heads=2,
                                         ffn_hidden=64),
                     audio=AudioEncoderConfig(conv_channels=8, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64),
                     audio_token_divisor=2)
    model = OmniModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(250):
            loss, _ = sft_loss(model, [dialogue(tok, rng) for _ in range(8)])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval(), tok


def test_second_question_is_about_the_second_picture(trained):
    model, tok = trained
    rng = np.random.default_rng(123)                        # held-out pictures: new draws of the jitter
    pairs = [("red", "blue"), ("green", "yellow"), ("blue", "red"), ("yellow", "green"), ("red", "green"),
             ("blue", "yellow")]
    for first, second in pairs:
        results = converse(model, tok, [SEE, SEE], images=[picture(first, rng), picture(second, rng)])
        assert [r.text for r in results] == [first, second], (first, second, [r.prompt for r in results])
        assert results[1].layout.count("image") == 2            # both pictures are in the second prompt


def test_second_question_is_about_the_clip_after_a_picture(trained):
    model, tok = trained
    rng = np.random.default_rng(321)
    for colour, loud in [("red", "quiet"), ("green", "loud"), ("yellow", "quiet"), ("blue", "loud")]:
        results = converse(model, tok, [SEE, HEAR], images=[picture(colour, rng)], mels=[clip(loud, rng)])
        assert [r.text for r in results] == [colour, loud]


def test_a_conversation_must_place_its_media(trained):
    model, tok = trained
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="each question places its own media with markers"):
        converse(model, tok, ["what colour is it?", SEE], images=[picture("red", rng), picture("blue", rng)])
