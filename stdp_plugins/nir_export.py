"""The trained reference network as a NIR graph (Neuromorphic Intermediate Representation,
package ``nir``), for SpikingJelly's and snnTorch's NIR importers.

The graph, for a network of ``L`` layers on ``H x W`` images::

    input [2, H, W] -> conv1 -> neuron1 -> pool1 -> pool1_neuron -> ... -> poolL_neuron -> output

- ``input``: one step of the encoded cumulative spike wave, ``[2, H, W]``
  (:func:`stdp_plugins.encoding.spike_waves` of :meth:`KheradpishehNet.encode`).
- ``conv{l}``: ``nir.Conv2d`` with the learned weights, zero bias, stride 1 and padding
  ``padding + input_padding`` of the layer (a never-firing border before a convolution is
  its zero padding).
- ``neuron{l}``: the layer's integrate-and-fire neurons with its threshold.
- ``pool{l}`` and ``pool{l}_neuron``: first-spike max-pooling, which on binary spike maps is
  "any input in the window fired": ``nir.AvgPool2d`` (the only pooling both importers map)
  followed by neurons of threshold ``1 / (2 k^2)``, half the smallest non-zero average.

Neurons are ``nir.LIF`` nodes with ``tau = 1e16 s`` (``r = tau / dt``, no leak potential,
reset to 0) rather than ``nir.IF``: snnTorch 1.0 imports ``nir.IF`` as a leaky
``Leaky(beta=0.9)`` that returns ``(spikes, membrane)`` and breaks the next node, and
SpikingJelly requires ``r = 1 / dt`` for it. With this time constant both importers build
non-leaky integrators (snnTorch's ``beta = 1 - dt / tau`` rounds to 1.0; SpikingJelly's
decay ``v / (tau / dt)`` is below half an ulp of ``v``), at their default ``dt = 1e-4``.

The paper's neuron fires at most once and its potential at step ``t`` is the convolution of
the cumulative input wave at ``t`` (docs/spec.md, 'First-spike convolution'); with its
non-negative weights that potential only grows, so the network's cumulative output wave at
``t`` is the graph run *from its initial state* on input wave ``t``. :func:`stepwise_waves` lays the ``T`` steps of a batch out as ``T * N``
independent samples for one such run; :func:`decode_stepwise_output` turns the output back
into first-spike times and features (its last step, :meth:`KheradpishehNet.features`).
Running the graph statefully over time instead would not be the paper's network: imported
neurons reset and fire again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from .encoding import spike_waves
from .learning._checks import check_int, check_tensor
from .learning.timing import conv_output_size
from .models.kheradpisheh import KheradpishehNet

__all__ = ["NIR_DT", "NEURON_TAU", "network_to_nir", "export_nir", "stepwise_waves", "decode_stepwise_output",
           "in_float64"]

#: Time step (seconds) that both importers assume by default; the neurons' parameters use it.
NIR_DT = 1e-4
#: Membrane time constant (seconds) of the exported neurons: non-leaky in float arithmetic.
NEURON_TAU = 1e16


def _neurons(shape: Tuple[int, int, int], threshold: float):
    """Non-leaky integrate-and-fire neurons of ``threshold`` (reset to 0) as ``nir.LIF``."""
    import nir

    return nir.LIF(
        tau=np.full(shape, NEURON_TAU),
        r=np.full(shape, NEURON_TAU / NIR_DT),
        v_leak=np.zeros(shape),
        v_threshold=np.full(shape, float(threshold)),
        v_reset=np.zeros(shape),
    )


def _check_input_size(input_size: Tuple[int, int]) -> Tuple[int, int]:
    if not isinstance(input_size, (tuple, list)) or len(input_size) != 2:
        raise ValueError(f"input_size must be a (height, width) pair, got {input_size!r}")
    return (check_int("input_size[0]", input_size[0], minimum=1), check_int("input_size[1]", input_size[1], minimum=1))


def network_to_nir(model: KheradpishehNet, input_size: Tuple[int, int] = (28, 28)):
    """The NIR graph of ``model`` for ``input_size`` images (see the module docstring).

    Parameters
    ----------
    model : KheradpishehNet
        The trained network (e.g. from :func:`stdp_plugins.cli.load_model`).
    input_size : (int, int)
        ``(H, W)`` of the images; the input node takes ``[2, H, W]`` spike waves.

    Returns
    -------
    nir.NIRGraph
        Nodes ``input``, ``conv{l}``, ``neuron{l}``, ``pool{l}``, ``pool{l}_neuron`` per
        layer ``l`` and ``output``; its metadata names the time steps and the drive.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`KheradpishehNet`.
    ValueError
        If ``input_size`` is not two positive integers or too small for the network, or a
        layer's weights are negative or not finite (STDP keeps them in ``[0, 1]``).
    """
    import nir

    if not isinstance(model, KheradpishehNet):
        raise TypeError(f"model must be a KheradpishehNet, got {type(model).__name__}")
    height, width = _check_input_size(input_size)
    channels = model.encoder.kernels.shape[0]
    nodes: Dict[str, object] = {"input": nir.Input(np.array([channels, height, width]))}
    edges: List[Tuple[str, str]] = []
    previous = "input"
    for layer in range(1, model.num_layers + 1):
        spec = model.spec(layer)
        weight = model.weight(layer).detach().cpu().to(torch.float32).numpy()
        if not (np.isfinite(weight).all() and (weight >= 0).all()):
            raise ValueError(f"model's layer {layer} weights must be finite and >= 0 (potentials that only grow "
                             f"make the step-from-rest run the network's), got min {weight.min()!r}")
        padding = spec.padding + spec.input_padding
        conv_h, conv_w = (conv_output_size(extent, spec.kernel_size, 1, padding) for extent in (height, width))
        if min(conv_h, conv_w) < 1:
            raise ValueError(f"input_size {tuple(input_size)} is too small for layer {layer}'s "
                             f"{spec.kernel_size}x{spec.kernel_size} convolution")
        if spec.global_pool:
            kernel, stride, pool_padding = (conv_h, conv_w), (conv_h, conv_w), (0, 0)
        else:
            kernel, stride = (spec.pool_kernel,) * 2, (spec.pool_stride,) * 2
            pool_padding = (spec.pool_padding,) * 2
        height, width = (conv_output_size(extent, k, s, p)
                         for extent, k, s, p in zip((conv_h, conv_w), kernel, stride, pool_padding))
        if min(height, width) < 1:
            raise ValueError(f"input_size {tuple(input_size)} is too small for layer {layer}'s pooling")
        names = [f"conv{layer}", f"neuron{layer}", f"pool{layer}", f"pool{layer}_neuron"]
        nodes[names[0]] = nir.Conv2d(
            input_shape=None, weight=weight, stride=1, padding=padding, dilation=1, groups=1,
            bias=np.zeros(weight.shape[0], dtype=np.float32),
        )
        nodes[names[1]] = _neurons((spec.out_channels, conv_h, conv_w), spec.threshold)
        nodes[names[2]] = nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(stride),
                                        padding=np.array(pool_padding))
        nodes[names[3]] = _neurons((spec.out_channels, height, width), 0.5 / (kernel[0] * kernel[1]))
        edges += list(zip([previous] + names[:-1], names))
        previous = names[-1]
    nodes["output"] = nir.Output(np.array([model.spec(model.num_layers).out_channels, height, width]))
    edges.append((previous, "output"))
    metadata = {
        "source": "stdp-plugins KheradpishehNet",
        "time_steps": model.config.time_steps,
        "drive": "run from the initial state on each step of the cumulative input spike wave",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def export_nir(model: KheradpishehNet, path: Union[str, Path], input_size: Tuple[int, int] = (28, 28)):
    """Write :func:`network_to_nir` of ``model`` to ``path`` (NIR's HDF5 format) and return it."""
    import nir

    graph = network_to_nir(model, input_size)
    nir.write(str(path), graph)
    return graph


def stepwise_waves(input_times: Tensor, time_steps: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Every step of the cumulative spike wave of ``input_times`` as its own sample.

    Parameters
    ----------
    input_times : Tensor
        ``[N, C, H, W]`` first-spike times (:meth:`KheradpishehNet.encode`).
    time_steps : int
        ``T`` (the model's ``config.time_steps``).
    dtype : torch.dtype
        dtype of the result (the imported network's).

    Returns
    -------
    Tensor
        ``[T * N, C, H, W]`` 0/1, step-major: sample ``t * N + n`` is image ``n`` at step ``t``.
        Feed it to an imported graph from its initial state.
    """
    check_tensor("input_times", input_times, 4, "[N, C, H, W]")
    return spike_waves(input_times, time_steps, dtype).flatten(0, 1)


def decode_stepwise_output(output: Tensor, time_steps: int) -> Tuple[Tensor, Tensor]:
    """First-spike times and features from the output of a run on :func:`stepwise_waves`.

    Parameters
    ----------
    output : Tensor
        ``[T * N, C, H, W]`` output spikes of the imported graph.
    time_steps : int
        ``T``.

    Returns
    -------
    (Tensor, Tensor)
        Float32 first-spike times ``[N, C, H, W]`` (the first step with a spike, ``inf``:
        none) and bool features ``[N, C, H, W]`` (a spike at the last step, as
        :meth:`KheradpishehNet.features`).
    """
    check_tensor("output", output, 4, "[T * N, C, H, W]")
    time_steps = check_int("time_steps", time_steps, minimum=1)
    if output.shape[0] % time_steps:
        raise ValueError(f"output must have T * N = a multiple of time_steps ({time_steps}) samples, "
                         f"got shape {tuple(output.shape)}")
    fired = output.reshape(time_steps, -1, *output.shape[1:]) > 0
    steps = torch.arange(time_steps, dtype=torch.float32, device=output.device).view(-1, 1, 1, 1, 1)
    times = torch.where(fired, steps, math.inf).amin(dim=0)
    return times, fired[-1]


def in_float64(imported: nn.Module) -> nn.Module:
    """``imported`` in float64, every convolution casting its input to float64 first.

    The network decides on float64 sums; a float32 run can differ for potentials within
    float32 rounding of a threshold. SpikingJelly's importer builds float64 models itself
    (``dtype=torch.float64``); snnTorch's spike function returns float32 whatever the
    membrane's dtype, so its next convolution needs the cast (a forward pre-hook).

    Parameters
    ----------
    imported : nn.Module
        A model from a NIR importer (converted in place).

    Returns
    -------
    nn.Module
        ``imported`` itself.
    """
    if not isinstance(imported, nn.Module):
        raise TypeError(f"imported must be a torch.nn.Module, got {type(imported).__name__}")
    imported.to(torch.float64)
    for module in imported.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_pre_hook(_cast_input_to_weight)
    return imported


def _cast_input_to_weight(conv: nn.Conv2d, args: tuple) -> tuple:
    """Forward pre-hook: the convolution's input in its weight's dtype."""
    return (args[0].to(conv.weight.dtype),) + tuple(args[1:])
