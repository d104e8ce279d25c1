"""stdp-plugins: first-spike-time STDP learning for SpikingJelly and snnTorch models.

The learning API (``STDPLearner``, ``WTAInhibition``, ``AdaptiveThreshold``,
``ConvergenceTracker`` and the standalone functions) lives in :mod:`stdp_plugins.learning`
and is re-exported here, with :func:`~stdp_plugins.serialization.load_weights` (a trained
network's weights into your own SpikingJelly or snnTorch model).
"""

from .learning import *  # noqa: F401,F403
from .learning import __all__ as _learning_all
from .backends import fused_winner_update
from .registry import (
    FirstSpikeLearner,
    LearnerGroup,
    attach,
    available_layers,
    available_rules,
    get_layer,
    get_rule,
    register_layer,
    register_rule,
)
from .serialization import load_weights

__version__ = "0.1.0"

__all__ = [
    *_learning_all,
    "FirstSpikeLearner",
    "LearnerGroup",
    "attach",
    "available_layers",
    "available_rules",
    "fused_winner_update",
    "get_layer",
    "get_rule",
    "load_weights",
    "register_layer",
    "register_rule",
]
