"""Generation, for any decoder that takes ids (or embeddings) and a KV cache: below every model.

    generate.py    the cached loop (prefill, then one token at a time) and the uncached reference
    sampling.py    SamplingConfig and sample_next: temperature, top-k, top-p, repetition penalty

They know no model: a model passes itself in (``generate(model, ...)``), so ThinkerLM, OmniModel,
MuFun's Qwen3 and the dry runs share one loop.
"""
