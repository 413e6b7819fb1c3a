"""Held-out evaluation of each training stage: ``omni.evaluation.<stage>.evaluate`` → a list of Metric."""
