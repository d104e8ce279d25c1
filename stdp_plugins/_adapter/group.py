"""Several learners driven together: what :func:`stdp_plugins.attach` returns."""

from __future__ import annotations

from operator import methodcaller
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .learner import FirstSpikeLearner

__all__ = ["LearnerGroup"]


class LearnerGroup:
    """Several learners driven together (what :func:`stdp_plugins.attach` returns).

    Parameters
    ----------
    learners : mapping of str to learner
        Learners by the name of their synapse in the model, in model order.
    """

    def __init__(self, learners: Mapping[str, FirstSpikeLearner]) -> None:
        self.learners: Dict[str, FirstSpikeLearner] = dict(learners)

    def __len__(self) -> int:
        return len(self.learners)

    def __iter__(self) -> Iterator[FirstSpikeLearner]:
        return iter(self.learners.values())

    def __getitem__(self, key: Union[str, int]) -> FirstSpikeLearner:
        if isinstance(key, int):
            return list(self.learners.values())[key]
        return self.learners[key]

    def names(self) -> List[str]:
        """Names of the synapses, in model order."""
        return list(self.learners)

    def pairs(self) -> List[Tuple[nn.Module, nn.Module]]:
        """``(synapse, post-synaptic module)`` of every learner, in model order."""
        return [(learner.synapse, learner.sn) for learner in self]

    def _each(self, method: Callable[[FirstSpikeLearner], Any]) -> Dict[str, Any]:
        return {name: method(learner) for name, learner in self.learners.items()}

    def step(self, on_grad: bool = True, scale: float = 1.0) -> Optional[Dict[str, Optional[Tensor]]]:
        """:meth:`FirstSpikeLearner.step` of every learner.

        Returns ``None`` when ``on_grad``, else the deltas by name.
        """
        deltas = self._each(lambda learner: learner.step(on_grad=on_grad, scale=scale))
        return None if on_grad else deltas

    def apply(self, scale: float = 1.0) -> Dict[str, Optional[Tensor]]:
        """:meth:`FirstSpikeLearner.apply` of every learner; the applied deltas by name."""
        return self._each(lambda learner: learner.apply(scale=scale))

    def reset(self) -> None:
        """Forget every learner's records."""
        self._each(methodcaller("reset"))

    def enable(self) -> None:
        """Enable every learner."""
        self._each(methodcaller("enable"))

    def disable(self) -> None:
        """Disable every learner."""
        self._each(methodcaller("disable"))

    def clamp_weights(self) -> None:
        """Clamp every synapse's weights to its bounds."""
        self._each(methodcaller("clamp_weights"))

    def clamp_on_step(self, optimizer: torch.optim.Optimizer) -> List[RemovableHandle]:
        """Clamp every synapse after each ``optimizer.step()``."""
        return list(self._each(lambda learner: learner.clamp_on_step(optimizer)).values())

    def initialize_weights(self, generator: Optional[torch.Generator] = None) -> None:
        """Redraw every synapse's weights from its configuration."""
        self._each(lambda learner: learner.initialize_weights(generator))

    def convergence(self) -> Dict[str, float]:
        """Convergence metric of every synapse, by name."""
        return self._each(methodcaller("convergence"))

    def close(self) -> None:
        """Close every learner: all hooks are removed, the model is as it was."""
        self._each(methodcaller("close"))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}: {type(learner.sn).__name__}" for name, learner in self.learners.items())
        return f"LearnerGroup({inner})"
