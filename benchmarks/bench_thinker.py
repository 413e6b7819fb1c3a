"""Speed of ThinkerLM against `transformers` with the identical configuration.

    python benchmarks/bench_thinker.py            (or: make bench)

1. Training step (forward + backward + AdamW), default config, batch 8 × 512
   tokens, fp32 on CPU: ours vs `LlamaForCausalLM` built with the same sizes
   (same parameter count, checked), side by side in one run; the ratio and the
   model-FLOPs utilisation against a matmul measured in the same run.
2. Greedy decode of 256 tokens after a 256-token prompt, batch 1: ours with the
   KV cache vs `transformers` `generate` on that same model, and vs our own
   uncached decoding.

`transformers` is a benchmark extra only (pip install -e ".[test]").
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.pipelines.generate import generate
from omni.pipelines.sampling import SamplingConfig


def hf_twin(cfg: ThinkerConfig):
    """A transformers Llama with exactly ThinkerLM's architecture and sizes."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_cfg = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ffn_hidden,
                         num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                         num_key_value_heads=cfg.n_kv_heads or cfg.n_heads, max_position_embeddings=cfg.ctx_len,
                         rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_embeddings,
                         attention_bias=False, mlp_bias=False, attn_implementation="sdpa",
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return LlamaForCausalLM(hf_cfg)


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def time_it(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_pair(a, b, warmup: int, reps: int) -> tuple[float, float]:
    """Median seconds of ``a`` and ``b``, run alternately so drifts of the machine hit both alike."""
    for _ in range(warmup):
        a(), b()
    ta, tb = [], []
    for _ in range(reps):
        for fn, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def matmul_flops_per_s(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / time_it(lambda: a @ b, 3, reps)


def train_step_fn(model, ids, ours: bool):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        if ours:
            logits = model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        else:
            logits = model(input_ids=ids[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def model_flops_per_step(cfg: ThinkerConfig, B: int, T: int, params: int) -> float:
    """6·N·tokens for the weights plus the attention score/value matmuls (fwd + bwd)."""
    attn = 12 * cfg.n_layers * B * T * T * cfg.d_model / 2    # causal: half the T×T block
    return 6 * params * B * T + attn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions of each side (medians reported)")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=256)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 CPU")

    cfg = ThinkerConfig()
    ours = ThinkerLM(cfg)
    theirs = hf_twin(cfg)
    assert n_params(ours) == n_params(theirs), f"parameter counts differ: {n_params(ours)} vs {n_params(theirs)}"
    print(f"parameters: {n_params(ours):,} each")

    # --- 1. training step ----------------------------------------------------
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1))
    matmul = matmul_flops_per_s()
    t_ours, t_hf = time_pair(train_step_fn(ours.train(), ids, True), train_step_fn(theirs.train(), ids, False),
                             1, args.reps)
    flops = model_flops_per_step(cfg, args.batch, args.seq, n_params(ours))
    print(f"\n## training step, batch {args.batch} × {args.seq}")
    print(f"matmul 1024³: {matmul / 1e9:.1f} GFLOP/s")
    print(f"ours        : {t_ours * 1e3:8.1f} ms/step  {args.batch * args.seq / t_ours:8.0f} tok/s  "
          f"MFU {flops / t_ours / matmul:.1%}")
    print(f"transformers: {t_hf * 1e3:8.1f} ms/step  {args.batch * args.seq / t_hf:8.0f} tok/s  "
          f"MFU {flops / t_hf / matmul:.1%}")
    print(f"speed ratio (ours / transformers): {t_hf / t_ours:.2f}×  (goal ≥ 1.00×)")

    # --- 2. greedy decoding --------------------------------------------------
    ours.eval(), theirs.eval()
    theirs.load_state_dict(_to_hf_state(ours.state_dict()), strict=True)
    prompt = torch.randint(3, cfg.vocab_size, (1, args.prompt))
    s = SamplingConfig(max_new_tokens=args.new)
    with torch.no_grad():
        t_cached, t_hf_gen = time_pair(
            lambda: generate(ours, ids=prompt, sampling=s),
            lambda: theirs.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                    max_new_tokens=args.new, min_new_tokens=args.new), 1, args.reps)
        t_uncached = time_it(lambda: generate(ours, ids=prompt, sampling=s, use_cache=False), 0, 1)
        same = torch.equal(generate(ours, ids=prompt, sampling=s).tokens,
                           theirs.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                           max_new_tokens=args.new, min_new_tokens=args.new)[:, args.prompt:])
    n = args.new
    print(f"\n## greedy decode, prompt {args.prompt}, {n} new tokens, batch 1")
    print(f"ours, KV cache        : {n / t_cached:8.1f} tok/s")
    print(f"transformers generate : {n / t_hf_gen:8.1f} tok/s")
    print(f"ours, no cache        : {n / t_uncached:8.1f} tok/s")
    print(f"ratio vs transformers : {t_hf_gen / t_cached:.2f}×  (goal ≥ 1.5×)")
    print(f"ratio vs uncached     : {t_uncached / t_cached:.2f}×  (goal ≥ 8×)")
    print(f"same greedy tokens as transformers: {same}")


def _to_hf_state(sd: dict, cfg: ThinkerConfig = ThinkerConfig()) -> dict:
    """ThinkerLM weights in the Llama layout: rename, and split the fused qkv / gate-up matrices."""
    H, Hkv, D = cfg.n_heads, cfg.n_kv_heads or cfg.n_heads, cfg.head_dim
    out = {}
    for k, v in sd.items():
        k = k.replace("tok_emb.", "model.embed_tokens.").replace("blocks.", "model.layers.")
        k = "model.norm.weight" if k == "norm.weight" else k
        if k.endswith("self_attn.qkv_proj.weight"):
            for name, part in zip(("q_proj", "k_proj", "v_proj"), v.split([H * D, Hkv * D, Hkv * D])):
                out[k.replace("qkv_proj", name)] = part
        elif k.endswith("mlp.gate_up_proj.weight"):
            for name, part in zip(("gate_proj", "up_proj"), v.chunk(2)):
                out[k.replace("gate_up_proj", name)] = part
        else:
            out[k] = v
    return out


if __name__ == "__main__":
    main()
