"""Qwen3 decoding against ``transformers`` on a tiny random model (fp32): KV-cached greedy generation
gives HF ``generate``'s tokens and per-step logits; a padded batch with an attention mask gives, at
every real position, the logits of each row alone (and HF's with the same mask).

With right padding, causality alone keeps real tokens from seeing the pads that follow them; with
left padding only the mask does (RoPE is relative, so a shifted row scores as it does alone).
"""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from omni.mufun.loading import load_qwen3  # noqa: E402
from omni.generation.generate import generate  # noqa: E402
from omni.generation.sampling import SamplingConfig  # noqa: E402

TOL = 1e-4          # as tests/test_mufun_parity.py: fp32, different kernels and summation orders
V = 120


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=V, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, intermediate_size=96, max_position_embeddings=64,
                      rms_norm_eps=1e-6, tie_word_embeddings=False, eos_token_id=None, bos_token_id=None,
                      pad_token_id=0, rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0})
    ref = Qwen3ForCausalLM(cfg).eval()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in ref.parameters():                     # every weight random, norms included
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    folder = tmp_path_factory.mktemp("qwen3")
    ref.save_pretrained(folder)
    return ref, load_qwen3(folder).eval()


def prompts(n: int, T: int, seed: int) -> torch.Tensor:
    return torch.randint(1, V, (n, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("batch", [1, 2])
def test_cached_greedy_decoding_equals_transformers_generate(models, batch):
    ref, ours = models
    ids, n_new = prompts(batch, 7, seed=batch), 20
    with torch.no_grad():
        hf = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new, min_new_tokens=n_new,
                          do_sample=False, output_scores=True, return_dict_in_generate=True)
    got = generate(ours, ids=ids, sampling=SamplingConfig(temperature=0.0, max_new_tokens=n_new), return_logits=True)
    assert got.tokens.shape == (batch, n_new)
    assert got.tokens.tolist() == hf.sequences[:, ids.shape[1]:].tolist()
    for step, (a, b) in enumerate(zip(got.step_logits, hf.scores)):
        err = (a - b).abs().max().item()
        assert err < TOL, f"step {step}: logits differ from transformers by {err}"
    uncached = generate(ours, ids=ids, sampling=SamplingConfig(temperature=0.0, max_new_tokens=n_new), use_cache=False)
    assert torch.equal(uncached.tokens, got.tokens)


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batch_with_a_mask_equals_each_row_alone(models, side):
    ref, ours = models
    rows = [prompts(1, 9, seed=10)[0], prompts(1, 5, seed=11)[0], prompts(1, 2, seed=12)[0]]
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), 7)                 # the pad id is arbitrary: masked, never seen
    mask = torch.zeros(len(rows), L, dtype=torch.long)
    for b, r in enumerate(rows):
        where = slice(0, len(r)) if side == "right" else slice(L - len(r), L)
        ids[b, where], mask[b, where] = r, 1
    with torch.no_grad():
        batched = ours(ids=ids, attention_mask=mask)
        hf = ref(input_ids=ids, attention_mask=mask).logits
        for b, r in enumerate(rows):
            alone = ours(ids=r[None])[0]
            real = mask[b].bool()
            err = (batched[b, real] - alone).abs().max().item()
            assert err < TOL, f"{side}-padded row {b}: differs from the row alone by {err}"
            err_hf = (batched[b, real] - hf[b, real]).abs().max().item()
            assert err_hf < TOL, f"{side}-padded row {b}: differs from transformers by {err_hf}"
        assert torch.isfinite(batched).all()                # padding queries do not give NaN rows
        if side == "left":                                  # here the mask is what makes the rows equal
            unmasked = ours(ids=ids)
            assert (unmasked[1, mask[1].bool()] - ours(ids=rows[1][None])[0]).abs().max() > 100 * TOL


def test_attention_mask_shape_is_checked(models):
    _, ours = models
    with pytest.raises(ValueError, match=r"attention_mask must be \(B, S\) = \(2, 4\)"):
        ours(ids=prompts(2, 4, seed=0), attention_mask=torch.ones(2, 5))
