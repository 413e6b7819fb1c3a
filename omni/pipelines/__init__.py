"""Inference with trained weights: ``chat`` (text, image, audio → text) and ``tts`` (text → wave).

The same paths traced on random weights are the dry runs, :mod:`omni.dry_run`.
"""
