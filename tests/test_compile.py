"""The optional compiled path (omni.nn.compiled): flags, and compiled == eager on a tiny Thinker."""

import time

import pytest
import torch

from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.nn.compiled import compile_blocks
from omni.generation.generate import generate
from omni.generation.sampling import SamplingConfig
from omni.training.config import TrainConfig
from omni.training.lm import NextTokenLoss
from omni.training.stage import command_line_overrides, stage_parser

TINY = ThinkerConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, ctx_len=32)


def test_compile_flag_sets_train_compile_and_defaults_to_eager():
    p = stage_parser("thinker", "doc")
    base = TrainConfig()
    assert base.compile is False
    assert command_line_overrides(base, p.parse_args(["--config", "x.json"])).compile is False
    assert command_line_overrides(base, p.parse_args(["--config", "x.json", "--compile"])).compile is True


def test_compile_blocks_names_a_model_without_blocks():
    with pytest.raises(ValueError, match="Linear has no omni.nn.Block"):
        compile_blocks(torch.nn.Linear(2, 2))


def test_inference_commands_take_compile():
    from omni.cli import build_parser

    p = build_parser()
    assert p.parse_args(["chat", "hi", "--compile"]).compile
    assert p.parse_args(["asr", "a.wav", "--compile"]).compile
    assert p.parse_args(["tts", "hi", "-o", "a.wav", "--compile"]).compile
    assert not p.parse_args(["chat", "hi"]).compile


@pytest.mark.slow   # compiling the training step and the decode step: about 40-60 s on 2 shared CPU cores
def test_compiled_blocks_agree_with_eager_in_training_and_greedy_decoding():
    torch.manual_seed(0)
    eager, compiled = ThinkerLM(TINY), ThinkerLM(TINY)
    compiled.load_state_dict(eager.state_dict())
    t0 = time.perf_counter()
    assert compile_blocks(compiled) == TINY.n_layers
    assert list(compiled.state_dict()) == list(eager.state_dict())      # compiled in place: same names

    ids = torch.randint(0, TINY.vocab_size, (2, 17))
    losses = [NextTokenLoss(m)(ids[:, :-1], ids[:, 1:]) for m in (eager, compiled)]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=0)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=0, msg=lambda m: f"grad of {name}: {m}")

    s = SamplingConfig(temperature=0.0, max_new_tokens=12)
    ref = generate(eager, ids=ids[:1, :6], sampling=s, return_logits=True)
    got = generate(compiled, ids=ids[:1, :6], sampling=s, return_logits=True)
    assert torch.equal(got.tokens, ref.tokens)
    for a, b in zip(got.step_logits, ref.step_logits):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    print(f"compiled and checked in {time.perf_counter() - t0:.0f} s")
