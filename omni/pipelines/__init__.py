"""Inference pipelines (text, image, audio, multimodal, TTS) and sampling."""
