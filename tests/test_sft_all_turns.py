"""omni_sft options: learn every assistant turn, and pack one-question image dialogues by image."""

from pathlib import Path

import pytest
import torch

from omni.data.dialogue import build_parts
from omni.data.manifest import Message, SftRecord
from omni.models.omni_model import IGNORE_INDEX, Fusion, Segment
from omni.stages.omni_sft import OmniSftDataConfig
from omni.tokenizer import EOS_ID
from omni.training.sft import pack_questions


class WordTokenizer:
    """One id per distinct word (from 10 on): enough for the template's bookkeeping."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        return [self.ids.setdefault(w, 10 + len(self.ids)) for w in text.split()]


def test_answer_spans_cover_each_answer_and_its_eos():
    tok = WordTokenizer()
    msgs = [Message("user", "how many?"), Message("assistant", "two"),
            Message("user", "what colour?"), Message("assistant", "dark red")]
    built = build_parts(msgs, tok)
    ids = [i for kind, x in built.parts if kind == "text" for i in x.tolist()]     # text tokens, in order
    assert [ids[a:b] for a, b in built.answer_spans] == [[tok.ids["two"], EOS_ID],
                                                          [tok.ids["dark"], tok.ids["red"], EOS_ID]]
    assert built.answer_spans[-1] == (built.prompt_tokens, len(ids)) and built.answer == "dark red"


def test_span_labels_learn_only_inside_the_spans_and_skip_media():
    # layout: text 3, image 1, text 5 → text positions 0..7 at sequence positions 0,1,2,4,5,6,7,8
    token_ids = torch.tensor([[1, 11, 12, IGNORE_INDEX, 13, 14, 15, 16, 2]])
    fusion = Fusion(torch.zeros(1, 9, 4), token_ids, [Segment("text", 0, 3), Segment("image", 3, 1),
                                                      Segment("text", 4, 5)])
    labels = fusion.span_labels([[(1, 2), (5, 8)]])
    assert labels.tolist() == [[-100, 11, -100, -100, -100, -100, 15, 16, 2]]
    # the last span alone is exactly labels(prompt_tokens)
    assert torch.equal(fusion.span_labels([[(5, 8)]]), fusion.labels(5))
    with pytest.raises(ValueError, match="2 rows for a batch of 1"):
        fusion.span_labels([[], []])


def record(i: int, image: str, question: str, answer: str) -> SftRecord:
    return SftRecord(f"r{i}", (Message("user", f"<image>\n{question}"), Message("assistant", answer)),
                     (Path(image),), (), ())


def test_packing_groups_one_question_dialogues_of_the_same_image_and_keeps_every_question():
    recs = [record(i, f"img{i % 2}.png", f"q{i}?", f"a{i}") for i in range(7)]
    clip = [SftRecord(f"c{i}", (Message("user", f"<audio>\nq{i}?"), Message("assistant", f"a{i}")),
                      (), (Path("snd.wav"),), ((0.0, 1.0),)) for i in range(2)]
    other_segment = SftRecord("c9", (Message("user", "<audio>\nq9?"), Message("assistant", "a9")),
                              (), (Path("snd.wav"),), ((1.0, 2.0),))
    audio, _ = pack_questions(clip + [other_segment], per_dialogue=3)
    assert sorted(len(r.messages) for r in audio) == [2, 4] and other_segment in audio
    two_turn = SftRecord("t", (Message("user", "<image>\nq?"), Message("assistant", "a"),
                               Message("user", "<image>\nr?"), Message("assistant", "b")),
                         (Path("img0.png"), Path("img1.png")), (), ())
    packed, n = pack_questions(recs + [two_turn], per_dialogue=3, seed=0)
    assert n == 7 and two_turn in packed
    dialogues = [r for r in packed if r is not two_turn]
    assert sorted(len(r.messages) // 2 for r in dialogues) == [1, 3, 3]      # img0: 4 → 3 + 1, img1: 3
    asked = set()
    for r in dialogues:
        users = [m.content for m in r.messages if m.role == "user"]
        assert users[0].startswith("<image>\n") and all("<image>" not in u for u in users[1:])
        assert len(r.images) == 1
        answers = [m.content for m in r.messages if m.role == "assistant"]
        for u, a in zip(users, answers):                                         # each answer stays with its question
            q = u.removeprefix("<image>\n")
            assert a == "a" + q[1:-1] and int(q[1:-1]) % 2 == int(str(r.images[0])[3])
            asked.add(q)
    assert asked == {f"q{i}?" for i in range(7)}


def test_packing_needs_every_turn_learned():
    with pytest.raises(ValueError, match="set learn_turns to 'all'"):
        OmniSftDataConfig(questions_per_dialogue=4)
    with pytest.raises(ValueError, match="learn_turns must be one of"):
        OmniSftDataConfig(learn_turns="first")
    assert OmniSftDataConfig(questions_per_dialogue=4, learn_turns="all").questions_per_dialogue == 4
