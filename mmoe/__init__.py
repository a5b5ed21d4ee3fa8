"""MMoE Lab engine: multi-task mixture-of-experts models for tabular data.

No Streamlit in here; the dashboard in ``dashboard/`` is a thin UI over this package.
"""
from mmoe.nn.model import MMoE, ModelOutput, OMoE, SharedBottom
from mmoe.nn.ple import CGC, PLE

__all__ = ["MMoE", "OMoE", "SharedBottom", "CGC", "PLE", "ModelOutput"]
__version__ = "0.1.0"
