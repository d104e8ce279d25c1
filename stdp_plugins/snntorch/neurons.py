"""snnTorch layers for the paper's network: the fire-once IF neuron and first-spike pooling."""

from __future__ import annotations

from typing import Optional, Tuple, Union

import snntorch as snn
import torch
from torch import Tensor, nn

from ..learning._checks import check_float, check_tensor
from ..backends import fire_once, first_spike_only
from ..learning.fire_once_if import PoolSize, check_pool_args, live_state, max_pool_spikes

__all__ = ["FireOnceIF", "FirstSpikeMaxPool2d"]


class FireOnceIF(snn.Leaky):
    """Kheradpisheh-2018 neuron: non-leaky integrate-and-fire that fires at most once.

    Per step: ``mem += input_``, ``spk = (mem >= threshold) & ~fired``, ``fired |= spk``;
    no leak and no reset, the membrane keeps integrating after the spike (see
    :func:`~stdp_plugins.fire_once`, run through :func:`stdp_plugins.backends.fire_once`). Not differentiable (for STDP).

    It is an ``snn.Leaky`` with ``beta=1`` and ``reset_mechanism="none"`` plus the fired
    state, so it is called like one and ``snntorch.utils.reset(net)`` resets it:

    - ``init_hidden=False``: ``mem = neuron.reset_mem()`` (or ``init_leaky()``), then
      ``spk, mem = neuron(cur, mem)`` every step.
    - ``init_hidden=True``: ``spk = neuron(cur)`` (``(spk, mem)`` when ``output=True``);
      ``snntorch.utils.reset(net)`` (or ``reset_mem()``) starts a new window.

    **How the window restarts.** The neuron remembers which neurons fired for the
    membrane tensor it returned last. A step that continues from that very tensor
    continues the window. Any other membrane (the new zeros of ``reset_mem()``,
    ``init_leaky()`` or ``utils.reset``, which replace ``mem``; a tensor you pass in; a
    change of the input shape, which starts from zeros) starts a window whose fired
    neurons are those with ``mem >= threshold`` (none for zeros; exact whenever the
    membrane never decreased, i.e. non-negative input).

    Parameters
    ----------
    threshold : float
        Firing threshold ``> 0``, kept as the ``threshold`` buffer like ``snn.Leaky``
        (it may be replaced by per-neuron thresholds that broadcast over the batch,
        e.g. by :class:`~stdp_plugins.snntorch.AdaptiveThresholdBinding`).
    init_hidden : bool
        Keep ``mem`` inside the module (``snn.Leaky`` semantics).
    output : bool
        With ``init_hidden=True``, also return ``mem``.

    Examples
    --------
    >>> lif = FireOnceIF(threshold=15.0)
    >>> mem = lif.reset_mem()
    >>> for step in range(num_steps):
    ...     spk, mem = lif(conv(x[step]), mem)
    """

    def __init__(self, threshold: float = 1.0, init_hidden: bool = False, output: bool = False) -> None:
        threshold = check_float("threshold", threshold, minimum=0.0, strict_min=True)
        super().__init__(beta=1.0, threshold=threshold, surrogate_disable=True, init_hidden=init_hidden,
                         reset_mechanism="none", output=output)
        self.register_buffer("fired", torch.zeros(0, dtype=torch.bool), persistent=False)
        self._fired_for: Optional[Tensor] = None  # the mem tensor that ``fired`` belongs to

    def _run(self, cur_seq: Tensor, mem: Optional[Tensor], return_mem_seq: bool) -> Tuple[Tensor, ...]:
        """:func:`fire_once` over ``cur_seq`` from the stored (or given) state; stores the new one."""
        if self.init_hidden and mem is not None:
            raise TypeError("mem must not be passed while init_hidden=True (the module keeps it)")
        if mem is not None:
            self.mem = mem
        mem = live_state(self.mem, cur_seq.shape[1:])
        if mem is None:
            fired = None
        elif mem is self._fired_for:
            fired = self.fired
        else:
            fired = mem >= self.threshold
        out = fire_once(cur_seq, self.threshold, mem, fired, return_v_seq=return_mem_seq)
        self.mem, self.fired = out[1], out[2]
        self._fired_for = self.mem
        return out

    def forward(
        self, input_: Tensor, mem: Optional[Tensor] = None
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """One time step.

        Parameters
        ----------
        input_ : Tensor
            Input current ``[N, ...]``.
        mem : Tensor, optional
            Membrane from the previous step (``init_hidden=False`` only); ``None`` uses
            the stored one.

        Returns
        -------
        Tensor or tuple
            ``(spk, mem)``; only ``spk`` with ``init_hidden=True`` and ``output=False``.
        """
        check_tensor("input_", input_)
        spk = self._run(input_.unsqueeze(0), mem, return_mem_seq=False)[0][0]
        if self.init_hidden and not self.output:
            return spk
        return spk, self.mem

    def forward_sequence(self, cur_seq: Tensor) -> Tuple[Tensor, Tensor]:
        """A whole time-major window at once, continuing from the stored state.

        Equals calling :meth:`forward` once per step (bit for bit) and leaves the same
        state (``mem`` = the last step's membrane). Call ``reset_mem()`` or
        ``utils.reset(net)`` first to start a new window. It bypasses forward hooks, so
        an STDP learner attached to this neuron does not record it.

        Parameters
        ----------
        cur_seq : Tensor
            Input currents ``[T, N, ...]``.

        Returns
        -------
        spk_seq : Tensor
            ``[T, N, ...]`` spikes.
        mem_seq : Tensor
            ``[T, N, ...]`` membrane after each step.
        """
        spk_seq, _, _, mem_seq = self._run(cur_seq, None, return_mem_seq=True)
        return spk_seq, mem_seq

    def extra_repr(self) -> str:
        thr = self.threshold
        shown = thr.item() if thr.numel() == 1 else f"per-neuron {tuple(thr.shape)}"
        return f"threshold={shown}, init_hidden={self.init_hidden}, output={self.output}"


class FirstSpikeMaxPool2d(nn.Module):
    """Max-pooling of fire-once spikes in which every pooled unit fires once, at its first input.

    Called once per time step on spikes ``[N, C, H, W]``. Max-pooling fire-once events
    can emit a pooled unit at several steps; in the paper (cumulative spike waves) it
    fires once, at its earliest input, so the layer keeps each pooled unit's first spike
    (zero padding never fires).

    **How the window restarts.** Call :meth:`reset` where you call ``reset_mem()`` /
    ``utils.reset(net)``; a change of the input shape also starts a new window.
    ``snntorch.utils.reset(net)`` does not reach this layer: it only resets the hidden
    state of snnTorch's own neuron classes.

    Parameters
    ----------
    kernel_size : int or pair of int
        Pooling window.
    stride : int or pair of int, optional
        Defaults to ``kernel_size``.
    padding : int or pair of int
        Zero padding (at most half the kernel).

    Attributes
    ----------
    fired : Tensor or None
        Pooled units that spiked in this window (``None`` after a reset).
    """

    def __init__(self, kernel_size: PoolSize, stride: Optional[PoolSize] = None, padding: PoolSize = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = check_pool_args(kernel_size, stride, padding)
        self.fired: Optional[Tensor] = None

    def forward(self, spk: Tensor) -> Tensor:
        """Pooled first spikes ``[N, C, H_out, W_out]`` of one step ``[N, C, H, W]``."""
        check_tensor("spk", spk, 4, "[N, C, H, W]")
        pooled = max_pool_spikes(spk.unsqueeze(0), self.kernel_size, self.stride, self.padding)
        out, self.fired = first_spike_only(pooled, live_state(self.fired, pooled.shape[1:]))
        return out[0]

    def reset(self) -> None:
        """Start a new time window."""
        self.fired = None

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
