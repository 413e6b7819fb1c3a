"""The package's layers, lowest first: the one table that ``tests/test_layers.py`` checks every import against,
that docs/layout.md describes and that ``omni docs build`` draws (docs/layers.png).

A module belongs to the layer of the longest prefix listed for it; it may import its own layer and the layers
below, never one above, and no modules import each other in a cycle.
"""

from __future__ import annotations

from typing import NamedTuple


class Layer(NamedTuple):
    title: str                   # what the layer holds, in a few words
    modules: tuple[str, ...]     # module prefixes: "omni.nn" covers omni/nn/*.py


LAYERS: list[Layer] = [
    Layer("the package, the shape tracer, progress bars", ("omni", "omni.trace", "omni.progress", "omni.layers")),
    Layer("blocks; signal and text basics; checkpoint I/O; device",
          ("omni.nn", "omni.audio", "omni.images", "omni.tokenizer", "omni.cer", "omni.checkpoint", "omni.device",
           "omni.viz")),
    Layer("the decoding loop, sampling", ("omni.generation",)),
    Layer("the models: the tiny omni stack and full-size MuFun", ("omni.models", "omni.mufun")),
    Layer("worlds, manifests, datasets; what each stage exports", ("omni.data", "omni.mufun.qa", "omni.exports")),
    Layer("the one training loop; inference", ("omni.training", "omni.pipelines")),
    Layer("held-out metrics; dry runs on random weights", ("omni.evaluation", "omni.dry_run")),
    Layer("the stages and their registry; the docs builder",
          ("omni.stages", "omni.traces", "omni.docs_build", "omni.docs_stepthrough")),
    Layer("the command line and the demo", ("omni.commands", "omni.demo", "omni.demo_args", "omni.cli",
                                            "omni.__main__")),
]
