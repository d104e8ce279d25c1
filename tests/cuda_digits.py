"""Shared inputs of the CUDA kernel tests (host build and GPU): the reference network on
real digits, and the winner rules every kernel is checked with."""

from __future__ import annotations

from stdp_plugins.backends import dense_first_spike_conv
from stdp_plugins.datasets import embedded_mnist
from stdp_plugins.learning import WTAMode
from stdp_plugins.models import KheradpishehNet

IMAGES = 6
CONVERGENCE_ATOL = 1e-6  # float32 means of up to ~9000 terms in [0, 0.25], summed in another order


def network_on_digits():
    """The reference network (torch path) on real digits.

    Returns
    -------
    (KheradpishehNet, dict)
        The network and, per layer 1 and 2: its training ``input``, a ``weight`` copy, its
        ``spec``, first-spike ``times`` and ``potentials``, learning ``winners`` and the
        learning ``rates`` at the start of training.
    """
    images, _ = embedded_mnist()
    net = KheradpishehNet(seed=0, backend="torch")
    layers = {}
    layer_input = net.layer_input(1, net.encode(images[:IMAGES]))
    for layer in (1, 2):
        if layer == 2:
            layer_input = net.next_input(2, layer_input)
        spec = net.spec(layer)
        times, potentials = dense_first_spike_conv(layer_input, net.weight(layer), spec.threshold, spec.padding,
                                                   net.config.time_steps)
        layers[layer] = {
            "input": layer_input, "weight": net.weight(layer).detach().clone(), "spec": spec,
            "times": times, "potentials": potentials, "winners": net.select_winners(layer, times, potentials),
            "rates": net.learning_rates(layer, 0),
        }
    return net, layers


#: (mode, radius, k_winners) of the winner-walk checks: every mode, with and without radius and cap.
WALK_RULES = [(mode, radius, k) for mode in WTAMode for radius in (0, 2) for k in (1, 5, 40)] + [
    (WTAMode.GLOBAL, 0, None), (WTAMode.BOTH, 1, None), (WTAMode.LOCAL, 3, None)]
