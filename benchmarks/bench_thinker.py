"""The Thinker's rows of `make bench`: ThinkerLM against `transformers` with the identical configuration.

    python benchmarks/bench_thinker.py [--threads 1] [--reps 5] [--no-compile]   (only these rows)

1. Training step (forward + backward + AdamW), default config, batch 8 × 512
   tokens, fp32 on CPU: ours (the loss of `omni train thinker`) vs
   `LlamaForCausalLM` built with the same sizes (same parameter count,
   checked), side by side in one run; the ratio and the model-FLOPs
   utilisation against a matmul measured in the same run; bf16 autocast
   against fp32; the compiled step (omni.nn.compiled) against eager.
2. Greedy decode of 256 tokens after a 256-token prompt, batch 1 and batch 8:
   ours with the KV cache vs `transformers` `generate` on that same model
   (same tokens, checked), eager and with the optional fast step
   (``generate(fast=True)``, omni.nn.fast_decode); the compiled decoder against eager.
3. The bounds: the training step's matmuls + attention alone, and the bare
   matmuls of the decode steps, each timed against the figure it bounds.

`transformers` is a benchmark extra only (pip install -e ".[test]").
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from table import Row, bench_main

from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.nn.compiled import compile_blocks
from omni.training.lm import NextTokenLoss, next_token_loss
from omni.generation.generate import generate
from omni.generation.sampling import SamplingConfig


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


def train_step_fn(model, ids, ours: bool, autocast: torch.dtype | None = None):
    """One AdamW step on ids (B, T+1): ours through the training loss of `omni train thinker`
    (omni.training.lm.next_token_loss), theirs through logits and F.cross_entropy."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    objective = NextTokenLoss(model) if ours else None

    def step():
        with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            if ours:
                loss, _ = next_token_loss(objective, ids)
            else:
                logits = model(input_ids=ids[:, :-1]).logits
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def model_flops_per_step(cfg: ThinkerConfig, B: int, T: int, params: int) -> float:
    """6·N·tokens for the weights plus the attention score/value matmuls (fwd + bwd)."""
    attn = 12 * cfg.n_layers * B * T * T * cfg.d_model / 2    # causal: half the T×T block
    return 6 * params * B * T + attn


def step_matmuls_fn(cfg: ThinkerConfig, B: int, T: int):
    """The bound of a training step: its matmuls (forward, dX, dW of every linear and the head) and
    its attention (SDPA forward + backward), on random tensors of the same shapes, nothing else."""
    M, C, H, D = B * T, cfg.d_model, cfg.n_heads, cfg.head_dim
    Hkv = cfg.n_kv_heads or cfg.n_heads
    shapes = [(C, (H + 2 * Hkv) * D), (H * D, C), (C, 2 * cfg.ffn_hidden), (cfg.ffn_hidden, C)] * cfg.n_layers
    shapes.append((C, cfg.vocab_size))                                            # the head
    mats = [(torch.randn(M, i), torch.randn(i, o), torch.randn(M, o)) for i, o in shapes]
    q, k, v = (torch.randn(B, H, T, D, requires_grad=True) for _ in range(3))
    gy = torch.randn(B, H, T, D)

    def run():
        for x, w, gy_lin in mats:
            x @ w, gy_lin @ w.t(), x.t() @ gy_lin                                 # y, dL/dx, dL/dw
        for _ in range(cfg.n_layers):
            F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(gy)
    return run


def decode_matmuls_fn(model: ThinkerLM, batch: int, n: int):
    """The bound of n decode steps: the 17 matmuls of each (the fast step's transposed weights), nothing else."""
    dec = model.fast_decoder()
    x = torch.randn(batch, model.cfg.d_model)
    h = torch.randn(batch, model.cfg.ffn_hidden)

    def run():
        for _ in range(n):
            for L in dec.layers:
                x @ L.qkv, x @ L.o, x @ L.gate_up, h @ L.down
            x @ dec.head
    return run


def cpu_has_bf16() -> bool:
    """Whether the processor has bf16 arithmetic (AVX512-BF16 or AMX-BF16), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def hf_generate(model, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """transformers' greedy `generate` of exactly n new tokens → (B, n)."""
    return model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                          max_new_tokens=n, min_new_tokens=n)[:, prompt.shape[1]:]


def compiled_copy(model: ThinkerLM) -> ThinkerLM:
    """A ThinkerLM with the same weights whose blocks are compiled (omni.nn.compiled)."""
    twin = ThinkerLM(model.cfg)
    twin.load_state_dict(model.state_dict())
    compile_blocks(twin)
    return twin.train(model.training)


def rows(args) -> list[Row]:
    """The Thinker's rows of the table: training step (fp32, MFU, bf16, compiled) and greedy decoding."""
    torch.manual_seed(0)
    cfg = ThinkerConfig()
    ours, theirs = ThinkerLM(cfg), hf_twin(cfg)
    assert n_params(ours) == n_params(theirs), f"parameter counts differ: {n_params(ours)} vs {n_params(theirs)}"
    B, T, tokens = args.batch, args.seq, args.batch * args.seq
    out = []

    # --- training step: fp32 against the twin, MFU against a matmul of the same run ---------------------
    ids = torch.randint(0, cfg.vocab_size, (B, T + 1))
    matmul = matmul_flops_per_s()
    t_ours, t_hf = time_pair(train_step_fn(ours.train(), ids, True), train_step_fn(theirs.train(), ids, False),
                             1, args.reps)
    matmul = max(matmul, matmul_flops_per_s())          # before and after the steps: the faster one
    mfu = model_flops_per_step(cfg, B, T, n_params(ours)) / t_ours / matmul
    out.append(Row(f"Thinker training step fp32, {B}×{T}", f"{t_ours * 1e3:.0f} ms ({tokens / t_ours:.0f} tok/s)",
                   f"transformers Llama {t_hf * 1e3:.0f} ms", t_hf / t_ours, 1.25))
    out.append(Row("  MFU of that step (6·N·tokens + attention)", f"{mfu:.0%}",
                   f"matmul 1024³ {matmul / 1e9:.1f} GFLOP/s", mfu, 0.70, unit="share"))
    # what bounds both: the step's matmuls and attention alone, against our whole step
    t_mm, t_step = time_pair(step_matmuls_fn(cfg, B, T), train_step_fn(ours, ids, True), 1, args.reps)
    mfu_max = model_flops_per_step(cfg, B, T, n_params(ours)) / t_mm / matmul
    out.append(Row("  bound: the step's matmuls + SDPA fwd/bwd alone (same shapes)",
                   f"{t_mm * 1e3:.0f} ms = {t_mm / t_step:.0%} of our step; MFU ceiling {mfu_max:.0%}",
                   f"our step {t_step * 1e3:.0f} ms", t_step / t_mm, None))

    # --- bf16 autocast against fp32, ours both ----------------------------------------------------------
    bf16 = cpu_has_bf16()
    t_bf, t_fp = time_pair(train_step_fn(ours, ids, True, torch.bfloat16), train_step_fn(ours, ids, True),
                           1, args.reps)
    out.append(Row(f"  --precision bf16 (autocast) vs fp32; CPU bf16 units: {'yes' if bf16 else 'no'}",
                   f"{t_bf * 1e3:.0f} ms", f"fp32 {t_fp * 1e3:.0f} ms", t_fp / t_bf, None))

    # --- compiled training step against eager -----------------------------------------------------------
    if args.compile:
        comp = compiled_copy(ours)
        step_c = train_step_fn(comp, ids, True)
        t0 = time.perf_counter()
        step_c()
        t_compile = time.perf_counter() - t0
        t_c, t_e = time_pair(step_c, train_step_fn(ours, ids, True), 1, args.reps)
        out.append(Row("  --compile vs eager", f"{t_c * 1e3:.0f} ms (first step {t_compile:.0f} s)",
                       f"eager {t_e * 1e3:.0f} ms", t_e / t_c, None))

    # --- greedy decoding: batch 1 and batch 8 against transformers generate ------------------------------
    ours.eval(), theirs.eval()
    theirs.load_state_dict(_to_hf_state(ours.state_dict()), strict=True)
    n = args.new
    s = SamplingConfig(max_new_tokens=n)
    with torch.no_grad():
        for batch in (1, 8):
            prompt = torch.randint(3, cfg.vocab_size, (batch, args.prompt))
            t_o, t_h = time_pair(lambda: generate(ours, ids=prompt, sampling=s), lambda: hf_generate(theirs, prompt, n),
                                 1, args.reps)
            same = torch.equal(generate(ours, ids=prompt, sampling=s).tokens, hf_generate(theirs, prompt, n))
            rate = f"{n / t_o:.0f} tok/s" + (f" per row, {batch * n / t_o:.0f} total" if batch > 1 else "")
            out.append(Row(f"greedy decode, batch {batch}, prompt {args.prompt} + {n} new (same tokens: {same})",
                           rate, f"transformers generate {n / t_h:.0f} tok/s" + (" per row" if batch > 1 else ""),
                           t_h / t_o, 2.5 if batch == 1 else None, ok=same))
            fast = lambda: generate(ours, ids=prompt, sampling=s, fast=True)      # noqa: E731
            t_f, t_h = time_pair(fast, lambda: hf_generate(theirs, prompt, n), 1, args.reps)
            same_f = torch.equal(fast().tokens, hf_generate(theirs, prompt, n))
            rate = f"{n / t_f:.0f} tok/s" + (f" per row, {batch * n / t_f:.0f} total" if batch > 1 else "")
            out.append(Row(f"  fast=True (omni.nn.fast_decode) vs transformers generate, batch {batch} "
                           f"(same tokens: {same_f})", rate,
                           f"transformers generate {n / t_h:.0f} tok/s" + (" per row" if batch > 1 else ""),
                           t_h / t_f, 2.5 if batch == 1 else None, ok=same_f))
            if batch == 1:   # the bound: the bare matmuls of every step
                t_mm, t_h = time_pair(decode_matmuls_fn(ours, batch, n), lambda: hf_generate(theirs, prompt, n),
                                      1, args.reps)
                out.append(Row("  bound: the 17 bare matmuls of each step (no attention, norms, prompt)",
                               f"{t_mm / n * 1e3:.2f} ms/token", f"transformers generate {t_h / n * 1e3:.2f} ms/token",
                               t_h / t_mm, None))
            if batch == 1 and args.compile:
                comp = compiled_copy(ours)
                t0 = time.perf_counter()
                same_c = torch.equal(generate(comp, ids=prompt, sampling=s).tokens, hf_generate(theirs, prompt, n))
                t_compile = time.perf_counter() - t0
                t_c, t_e = time_pair(lambda: generate(comp, ids=prompt, sampling=s),
                                     lambda: generate(ours, ids=prompt, sampling=s), 1, args.reps)
                out.append(Row(f"  --compile vs eager, batch 1 (same tokens: {same_c})",
                               f"{n / t_c:.0f} tok/s (first call {t_compile:.0f} s)", f"eager {n / t_e:.0f} tok/s",
                               t_e / t_c, None, ok=same_c))
                out.append(Row("  --compile vs transformers generate, batch 1", f"{n / t_c:.0f} tok/s",
                               f"transformers generate {n / t_h:.0f} tok/s", t_h / t_c, 2.5, ok=same_c))
    return out


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


def main() -> None:
    bench_main(__doc__, rows)


if __name__ == "__main__":
    main()
