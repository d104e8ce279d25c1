"""Kheradpisheh et al. (2018) as a plain SpikingJelly model, trained by the plug-in's learners.

The paper's network is an ordinary multi-step ``nn.Sequential`` of SpikingJelly's
``layer.Conv2d`` and the paper's neuron and pooling from ``stdp_plugins.spikingjelly``.
:func:`stdp_plugins.models.recipe.attach_paper_learners` (``stdp_plugins.attach`` with the
paper's winner rules) gives both convolutions a first-spike STDP learner, and the
training is the usual SpikingJelly loop (forward a batch, ``apply()`` the update,
``functional.reset_net``) without labels: layer 1 for 3 epochs, then layer 2 for 20. The
max-over-time spikes of the last pooling layer are read out with a linear SVM as
``stdp-plugins train`` does (fitted on the training digits and shifted copies of them).

Run (the embedded 6,000 training and 2,000 test digits by default)::

    python examples/spikingjelly_kheradpisheh.py --out runs/spikingjelly

It writes ``metrics.json`` into ``--out``; the last line printed is the test accuracy.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional, Sequence

import torch
from spikingjelly.activation_based import functional, layer
from torch import Tensor, nn
from tqdm.auto import tqdm

from stdp_plugins import LearnerGroup, WTAConfig, WTAMode
from stdp_plugins.encoding import DoGLatencyEncoder, spike_events
from stdp_plugins.learning import get_first_spike_times
from stdp_plugins.models.recipe import PAPER, FrameworkNetwork, run
from stdp_plugins.spikingjelly import FireOnceIFNode, FirstSpikeMaxPool2d, WTALayer
from stdp_plugins.training import epoch_order

TIME_STEPS = PAPER.time_steps
SYNAPSES = ("conv1", "conv2")  # the learner of layer l is group[SYNAPSES[l - 1]]


def build_model() -> nn.Sequential:
    """The paper's network in multi-step mode: spike events ``[T, N, 2, 28, 28]`` in,
    pooled layer-2 spikes ``[T, N, 150, 9, 9]`` out.

    ``inhibit``, the pointwise inhibition of layer 2's input, acts in training mode only.
    """
    l1, l2 = PAPER.layer1, PAPER.layer2
    net = nn.Sequential(OrderedDict(
        conv1=layer.Conv2d(l1.in_channels, l1.out_channels, l1.kernel_size, padding=l1.padding, bias=False),
        sn1=FireOnceIFNode(l1.threshold),
        pool1=FirstSpikeMaxPool2d(PAPER.pool_kernel, PAPER.pool_stride, PAPER.pool_padding),
        inhibit=WTALayer(WTAConfig(mode=WTAMode.LOCAL, local_radius=0), train_only=True),
        # the reference zero-pads pool1's output by 1 and convolves without padding: the same
        conv2=layer.Conv2d(l2.in_channels, l2.out_channels, l2.kernel_size, padding=PAPER.inter_padding,
                           bias=False),
        sn2=FireOnceIFNode(l2.threshold),
        pool2=FirstSpikeMaxPool2d(PAPER.pool_kernel, PAPER.pool_stride, PAPER.pool_padding),
    ))
    functional.set_step_mode(net, "m")
    return net.requires_grad_(False)


def training_stage(net: nn.Sequential, layer_index: int) -> nn.Sequential:
    """The modules a layer's training runs: ``conv1, sn1`` on the input spikes for layer 1,
    ``conv2, sn2`` on :func:`layer2_input` for layer 2."""
    return net[:2] if layer_index == 1 else net[4:6]


@torch.no_grad()
def layer2_input(net: nn.Sequential, input_times: Tensor, batch_size: int = 64) -> Tensor:
    """First-spike times ``[N, 32, 15, 15]`` of what ``conv2`` sees in training, given input
    spike times ``[N, 2, 28, 28]``: ``conv1, sn1, pool1, inhibit`` in training mode.

    Layer 1 does not change while layer 2 learns, so this is computed once for all
    training images instead of once per epoch.
    """
    stage = net[:4].train()
    parts = []
    for chunk in input_times.split(batch_size):
        parts.append(get_first_spike_times(stage(spike_events(chunk, TIME_STEPS))))
        functional.reset_net(net)
    return torch.cat(parts)


def train_layer(net: nn.Sequential, group: LearnerGroup, layer_index: int, inputs: Tensor, epochs: int,
                batch_size: int = 32, seed: int = 0, progress: bool = True) -> None:
    """Train one layer through its learner; the other learners are disabled.

    Every epoch walks ``inputs`` in a fresh seeded order (:func:`stdp_plugins.training.epoch_order`, the CLI's) in batches
    of ``batch_size``: set the scheduled rates, run the layer's :func:`training_stage` on
    the batch's spike events, ``apply()`` the learner's update (the images' STDP steps one
    after another) and reset the network.

    Parameters
    ----------
    net : nn.Sequential
        From :func:`build_model`.
    group : LearnerGroup
        From :func:`stdp_plugins.models.recipe.attach_paper_learners`.
    layer_index : int
        1 or 2.
    inputs : Tensor
        First-spike times entering the stage: the encoded images ``[N, 2, 28, 28]`` for
        layer 1, :func:`layer2_input` for layer 2.
    epochs, batch_size, seed : int
        Epoch budget, images per batch and seed of the orders.
    progress : bool
        Show a tqdm progress bar.
    """
    learner = group[SYNAPSES[layer_index - 1]]
    group.disable()
    learner.enable()
    stage = training_stage(net, layer_index).train()
    n = inputs.shape[0]
    seen = 0
    with torch.no_grad(), tqdm(total=epochs * n, desc=f"layer {layer_index}", unit="img", disable=not progress) as bar:
        for epoch in range(epochs):
            for batch in epoch_order(seed, layer_index, epoch, n).split(batch_size):
                learner.set_learning_rates(*PAPER.learning_rates(layer_index, seen))
                stage(spike_events(inputs[batch], TIME_STEPS))
                learner.apply()
                functional.reset_net(net)
                seen += batch.numel()
                bar.update(batch.numel())
    learner.disable()


def featurizer(net: nn.Sequential, encoder: DoGLatencyEncoder, batch_size: int = 8) -> Callable[[Tensor], Tensor]:
    """Images ``[n, 28, 28]`` to features: did each unit of ``pool2`` fire, bool
    ``[n, 150, 9, 9]`` on the CPU (eval mode: layer 2 sees pool1 uninhibited). Once the
    learners are closed, the convolutions run channels-last, which is faster here."""
    net.to(memory_format=torch.channels_last)
    device = next(net.parameters()).device

    @torch.inference_mode()
    def featurize(images: Tensor) -> Tensor:
        net.eval()
        parts = []
        for chunk in images.split(batch_size):
            spikes = net(spike_events(encoder.spike_times(chunk.to(device)), TIME_STEPS))
            functional.reset_net(net)
            parts.append(spikes.amax(dim=0).bool().cpu())
        return torch.cat(parts)

    return featurize


NETWORK = FrameworkNetwork("SpikingJelly", build_model, train_layer, layer2_input, featurizer)


def main(argv: Optional[Sequence[str]] = None) -> float:
    """The command line of :func:`stdp_plugins.models.recipe.run`; returns the test accuracy."""
    return run(NETWORK, argv)


if __name__ == "__main__":
    main()
