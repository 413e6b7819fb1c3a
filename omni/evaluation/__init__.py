"""Held-out evaluation, one module per stage: ``omni.evaluation.<stage>.evaluate(ckpt, data, split) -> list[Metric]``."""
