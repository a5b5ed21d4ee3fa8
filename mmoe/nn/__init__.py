"""nn.Modules only: the input encoder, stacked experts, gates and towers, MMoE / OMoE /
Shared-Bottom (``model``), CGC / PLE (``ple``), and the hand-written training step for them (``fused``,
with torch's optional kernels probed in ``kernels``, its flat parameter buffer laid out in ``layout``, and
scoring's first layer computed per category in ``projection``).

Dimension legend used throughout: b batch, e experts, t tasks, g gates, h hidden, d input width.
"""
from mmoe.nn.model import (
                           InputEncoder,
                           MixtureOfExperts,
                           MMoE,
                           ModelOutput,
                           OMoE,
                           SharedBottom,
                           StackedMLP,
                           TabularModel,
                           build_model,
                           count_parameters,
)
from mmoe.nn.ple import CGC, PLE, ExtractionLevel

__all__ = ["MMoE", "OMoE", "SharedBottom", "CGC", "PLE", "MixtureOfExperts", "ExtractionLevel", "ModelOutput",
           "StackedMLP", "InputEncoder", "TabularModel", "build_model", "count_parameters"]
