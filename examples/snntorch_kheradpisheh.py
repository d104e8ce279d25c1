"""Kheradpisheh et al. (2018) as a plain snnTorch model, trained by the plug-in's learners.

The paper's network is written the way snnTorch's tutorials write a model: a custom
``nn.Module`` of ``nn.Conv2d`` layers and neurons with an explicit loop over the time
steps; the neuron and the pooling are the paper's, from ``stdp_plugins.snntorch``.
:func:`stdp_plugins.models.recipe.attach_paper_learners` (``stdp_plugins.attach`` with the
paper's winner rules) gives both convolutions a first-spike STDP learner, and
training is a plain loop (forward a batch, ``apply()`` the update) without labels: layer 1
for 3 epochs, then layer 2 for 20. The max-over-time spikes of the last pooling layer are
read out with a linear SVM as ``stdp-plugins train`` does (fitted on the training digits
and shifted copies of them).

Run (the embedded 6,000 training and 2,000 test digits by default)::

    python examples/snntorch_kheradpisheh.py --out runs/snntorch

It writes ``metrics.json`` into ``--out``; the last line printed is the test accuracy.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from stdp_plugins import LearnerGroup, WTAConfig, WTAMode
from stdp_plugins.encoding import DoGLatencyEncoder, spike_events
from stdp_plugins.learning import get_first_spike_times
from stdp_plugins.models.recipe import PAPER, FrameworkNetwork, run
from stdp_plugins.snntorch import FireOnceIF, FirstSpikeMaxPool2d, WTALayer
from stdp_plugins.training import epoch_order

NUM_STEPS = PAPER.time_steps
SYNAPSES = ("conv1", "conv2")  # the learner of layer l is group[SYNAPSES[l - 1]]


class KheradpishehSNN(nn.Module):
    """The paper's network, one time step per call of each layer.

    ``inhibit``, the pointwise inhibition of layer 2's input, acts in training mode only.
    Every window (a call of :meth:`layer1`, :meth:`layer2` or :meth:`forward`) starts from
    reset neurons, pooling and inhibition.
    """

    def __init__(self) -> None:
        super().__init__()
        l1, l2 = PAPER.layer1, PAPER.layer2
        pool = (PAPER.pool_kernel, PAPER.pool_stride, PAPER.pool_padding)
        self.conv1 = nn.Conv2d(l1.in_channels, l1.out_channels, l1.kernel_size, padding=l1.padding, bias=False)
        self.lif1 = FireOnceIF(threshold=l1.threshold)
        self.pool1 = FirstSpikeMaxPool2d(*pool)
        self.inhibit = WTALayer(WTAConfig(mode=WTAMode.LOCAL, local_radius=0), train_only=True)
        # the reference zero-pads pool1's output by 1 and convolves without padding: the same
        self.conv2 = nn.Conv2d(l2.in_channels, l2.out_channels, l2.kernel_size, padding=PAPER.inter_padding,
                               bias=False)
        self.lif2 = FireOnceIF(threshold=l2.threshold)
        self.pool2 = FirstSpikeMaxPool2d(*pool)

    def layer1(self, spikes: Tensor, pooled: bool = True) -> Tensor:
        """Spike events ``[T, N, 2, 28, 28]`` to ``lif1``'s spikes ``[T, N, 32, 28, 28]``
        or, when ``pooled``, to ``pool1``'s then ``inhibit``'s ``[T, N, 32, 15, 15]``."""
        mem1 = self.lif1.reset_mem()
        self.pool1.reset()
        self.inhibit.reset()
        spk_rec = []
        for step in range(spikes.shape[0]):
            spk1, mem1 = self.lif1(self.conv1(spikes[step]), mem1)
            spk_rec.append(self.inhibit(self.pool1(spk1)) if pooled else spk1)
        return torch.stack(spk_rec)

    def layer2(self, spikes: Tensor, pooled: bool = True) -> Tensor:
        """Layer 1's output ``[T, N, 32, 15, 15]`` to ``lif2``'s spikes ``[T, N, 150, 16, 16]``
        or, when ``pooled``, to ``pool2``'s ``[T, N, 150, 9, 9]``."""
        mem2 = self.lif2.reset_mem()
        self.pool2.reset()
        spk_rec = []
        for step in range(spikes.shape[0]):
            spk2, mem2 = self.lif2(self.conv2(spikes[step]), mem2)
            spk_rec.append(self.pool2(spk2) if pooled else spk2)
        return torch.stack(spk_rec)

    def forward(self, spikes: Tensor) -> Tensor:
        """Spike events ``[T, N, 2, 28, 28]`` to pooled layer-2 spikes ``[T, N, 150, 9, 9]``."""
        return self.layer2(self.layer1(spikes))


def build_model() -> KheradpishehSNN:
    """The network, without gradients (STDP needs none)."""
    return KheradpishehSNN().requires_grad_(False)


def layer2_input(net: KheradpishehSNN, input_times: Tensor, batch_size: int = 64) -> Tensor:
    """First-spike times ``[N, 32, 15, 15]`` of what ``conv2`` sees in training, given input
    spike times ``[N, 2, 28, 28]``: :meth:`~KheradpishehSNN.layer1` in training mode.

    Layer 1 does not change while layer 2 learns, so this is computed once for all
    training images instead of once per epoch.
    """
    net.train()
    return torch.cat([get_first_spike_times(net.layer1(spike_events(chunk, NUM_STEPS)))
                      for chunk in input_times.split(batch_size)])


def train_layer(net: KheradpishehSNN, group: LearnerGroup, layer_index: int, inputs: Tensor, epochs: int,
                batch_size: int = 32, seed: int = 0, progress: bool = True) -> None:
    """Train one layer through its learner; the other learners are disabled.

    Every epoch walks ``inputs`` in a fresh seeded order (:func:`stdp_plugins.training.epoch_order`, the CLI's) in batches
    of ``batch_size``: set the scheduled rates, run the layer on the batch's spike events
    (``layer1`` or ``layer2`` without pooling) and ``apply()`` the learner's update (the
    images' STDP steps one after another).

    Parameters
    ----------
    net : KheradpishehSNN
        From :func:`build_model`.
    group : LearnerGroup
        From :func:`stdp_plugins.models.recipe.attach_paper_learners`.
    layer_index : int
        1 or 2.
    inputs : Tensor
        First-spike times entering the layer: the encoded images ``[N, 2, 28, 28]`` for
        layer 1, :func:`layer2_input` for layer 2.
    epochs, batch_size, seed : int
        Epoch budget, images per batch and seed of the orders.
    progress : bool
        Show a tqdm progress bar.
    """
    learner = group[SYNAPSES[layer_index - 1]]
    group.disable()
    learner.enable()
    layer = net.layer1 if layer_index == 1 else net.layer2
    net.train()
    n = inputs.shape[0]
    seen = 0
    with torch.no_grad(), tqdm(total=epochs * n, desc=f"layer {layer_index}", unit="img", disable=not progress) as bar:
        for epoch in range(epochs):
            for batch in epoch_order(seed, layer_index, epoch, n).split(batch_size):
                learner.set_learning_rates(*PAPER.learning_rates(layer_index, seen))
                layer(spike_events(inputs[batch], NUM_STEPS), pooled=False)
                learner.apply()
                seen += batch.numel()
                bar.update(batch.numel())
    learner.disable()


def featurizer(net: KheradpishehSNN, encoder: DoGLatencyEncoder, batch_size: int = 32) -> Callable[[Tensor], Tensor]:
    """Images ``[n, 28, 28]`` to features: did each unit of ``pool2`` fire, bool
    ``[n, 150, 9, 9]`` on the CPU (eval mode: layer 2 sees pool1 uninhibited)."""
    device = net.conv1.weight.device

    @torch.inference_mode()
    def featurize(images: Tensor) -> Tensor:
        net.eval()
        return torch.cat([net(spike_events(encoder.spike_times(chunk.to(device)), NUM_STEPS)).amax(dim=0).bool().cpu()
                          for chunk in images.split(batch_size)])

    return featurize


NETWORK = FrameworkNetwork("snnTorch", build_model, train_layer, layer2_input, featurizer)


def main(argv: Optional[Sequence[str]] = None) -> float:
    """The command line of :func:`stdp_plugins.models.recipe.run`; returns the test accuracy."""
    return run(NETWORK, argv)


if __name__ == "__main__":
    main()
