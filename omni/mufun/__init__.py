"""MuFun's full-size audio path (seeds 000–003): Whisper-large-v3 encoder, BLP_4i_2x connector,
Qwen3, fusion at <audio> markers, strict loading from Hugging Face folders, and the meta dry run.
See docs/mufun.md and docs/errata.md."""
