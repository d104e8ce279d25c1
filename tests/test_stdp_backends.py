"""The dispatched batch STDP update: dispatch, torch path, native path, CUDA source and
CuPy path.

CPU tests run everywhere (the native path wherever a C compiler exists); the kernels' host
build and nvcc compilation are tested in ``test_cuda_host.py`` and ``test_cuda_compile.py``.
Tests marked ``gpu`` compare the CuPy path with the torch path on a CUDA device and are
the only ones that skip (without a GPU, or without CuPy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Dict, Optional, Union

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from stdp_plugins.backends import (
    BACKENDS,
    cupy_available,
    fused_winner_update,
    native_available,
    resolve_backend,
)
from stdp_plugins.learning import STDPConfig, STDPVariant, channel_convergence, conv_output_size, sequential_stdp_update_

INF = math.inf
HAS_GPU = torch.cuda.is_available() and cupy_available()
requires_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU and CuPy")


# --------------------------------------------------------------------------- helpers


@dataclass
class Case:
    """One randomised fused-update problem."""

    weights: Tensor
    pre: Tensor
    post: Tensor
    mask: Optional[Tensor]
    config: STDPConfig
    lr_plus: Union[float, Tensor]
    lr_minus: Union[float, Tensor]
    stride: int
    padding: int

    def to(self, device: str) -> "Case":
        def move(value):
            return value.to(device) if isinstance(value, Tensor) else value

        return Case(move(self.weights), move(self.pre), move(self.post), move(self.mask), self.config,
                    move(self.lr_plus), move(self.lr_minus), self.stride, self.padding)

    def run(self, backend: str) -> Tensor:
        return fused_winner_update(self.weights, self.pre, self.post, self.mask, self.config,
                                   self.lr_plus, self.lr_minus, self.stride, self.padding, backend)


def random_case(seed: int, max_size: int = 12) -> Case:
    """A random problem: any kernel size, stride, padding, bounds, variant, winner set."""
    g = torch.Generator().manual_seed(seed)

    def integer(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=g))

    def uniform() -> float:
        return float(torch.rand((), generator=g))

    k, stride = integer(1, 5), integer(1, 3)
    padding = integer(0, k)
    c_in, c_out, n = integer(1, 6), integer(1, 10), integer(1, 5)
    height = integer(max(1, k - 2 * padding), max_size)
    width = integer(max(1, k - 2 * padding), max_size)
    out_shape = (n, c_out, conv_output_size(height, k, stride, padding), conv_output_size(width, k, stride, padding))

    def times(shape: tuple) -> Tensor:
        t = torch.randint(0, 8, shape, generator=g).float()
        if seed % 3 == 0:  # non-integer times as well as ties
            t = t + 0.5 * torch.rand(shape, generator=g).round()
        return t.masked_fill(torch.rand(shape, generator=g) < uniform() * 0.7, INF)

    pre, post = times((n, c_in, height, width)), times(out_shape)
    mask_kind = seed % 4
    mask = None
    if mask_kind == 1:
        mask = torch.rand(out_shape, generator=g) < uniform() * 0.3
    elif mask_kind == 2:
        mask = torch.zeros(out_shape, dtype=torch.bool)
    elif mask_kind == 3:  # a few winners, some of them with infinite post times
        mask = torch.rand(out_shape, generator=g) < 0.05
        post = post.masked_fill(torch.rand(out_shape, generator=g) < 0.3, INF)
    w_min, w_max = (0.0, 1.0) if seed % 2 == 0 else (-0.5, 2.0)
    config = STDPConfig(weight_min=w_min, weight_max=w_max,
                        variant=STDPVariant.ADDITIVE if seed % 5 == 0 else STDPVariant.MULTIPLICATIVE)
    span = w_max - w_min
    weights = w_min - 0.05 * span + 1.1 * span * torch.rand(c_out, c_in, k, k, generator=g)
    lr_plus, lr_minus = 0.2 * uniform(), 0.2 * uniform()
    if seed % 7 == 0:
        lr_plus, lr_minus = torch.tensor(lr_plus), torch.tensor(lr_minus)
    return Case(weights, pre, post, mask, config, lr_plus, lr_minus, stride, padding)


def naive_update(case: Case) -> Dict[str, Tensor]:
    """Independent reference: one winner at a time, receptive fields sliced by hand."""
    cfg, k = case.config, case.weights.shape[-1]
    p = case.padding
    padded = F.pad(case.pre, (p, p, p, p), value=INF)
    winners = torch.isfinite(case.post) if case.mask is None else torch.isfinite(case.post) & case.mask
    total = torch.zeros_like(case.weights, dtype=torch.float64)
    wins = torch.zeros(case.weights.shape[0], dtype=torch.float64)
    for sample, channel, y, x in winners.nonzero().tolist():
        field = padded[sample, :, y * case.stride:y * case.stride + k, x * case.stride:x * case.stride + k]
        total[channel] += (field <= case.post[sample, channel, y, x]).double()
        wins[channel] += 1
    w = case.weights.double()
    fraction = total / wins.clamp(min=1)[:, None, None, None]
    factor = (w - cfg.weight_min) * (cfg.weight_max - w) if cfg.variant is STDPVariant.MULTIPLICATIVE else 1.0
    lr_plus, lr_minus = float(case.lr_plus), float(case.lr_minus)
    delta = factor * ((lr_plus + lr_minus) * fraction - lr_minus) * (wins > 0)[:, None, None, None]
    updated = (w + delta).clamp(cfg.weight_min, cfg.weight_max)
    normalised = (updated - cfg.weight_min) / (cfg.weight_max - cfg.weight_min)
    return {"weights": updated, "convergence": (normalised * (1 - normalised)).flatten(1).mean(1)}


def small_case() -> Case:
    """Hand-computed: channel 0 has two winners, channel 1 none (its masked entry never fired)."""
    weights = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]], [[[0.5, 0.2], [0.9, 1.0]]]])
    pre = torch.tensor([[[[0.0, 1.0, INF], [2.0, 3.0, 0.0], [INF, 1.0, 2.0]]]])
    post = torch.full((1, 2, 2, 2), INF)
    post[0, 0, 0, 0], post[0, 0, 1, 1], post[0, 1, 0, 1] = 1.0, 2.0, 0.0
    mask = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    mask[0, 0, 0, 0] = mask[0, 0, 1, 1] = mask[0, 1, 1, 0] = True
    return Case(weights, pre, post, mask, STDPConfig(), 0.4, 0.2, 1, 0)


# --------------------------------------------------------------------------- dispatch (CPU)


def test_auto_picks_native_on_cpu_and_explicit_backends_are_reached():
    cpu = torch.device("cpu")
    assert resolve_backend("stdp_update", "auto", cpu) == ("native" if native_available() else "torch")
    assert resolve_backend("stdp_update", "torch", cpu) == "torch"
    assert resolve_backend("stdp_update", "auto", cpu, {"native": "float64"}) == "torch"
    with pytest.raises(ValueError, match=r"backend='native' cannot run stdp_update here: float64"):
        resolve_backend("stdp_update", "native", cpu, {"native": "float64"})
    with pytest.raises(ValueError, match=r"backend='cupy' runs on cuda tensors, got tensors on cpu"):
        resolve_backend("select_winners", "cupy", cpu)


@pytest.mark.parametrize("backend", ["auto", "native"])
@pytest.mark.parametrize("reduction", ["mean", "sequential"])
@pytest.mark.parametrize("seed", range(6))
def test_native_equals_torch_bit_for_bit(seed, reduction, backend):
    if backend == "native" and not native_available():
        pytest.fail("a C compiler is installed here, so the native library must build")
    a, b = random_case(seed), random_case(seed)
    convergence = fused_winner_update(a.weights, a.pre, a.post, a.mask, a.config, a.lr_plus, a.lr_minus,
                                      a.stride, a.padding, backend, reduction=reduction)
    expected = fused_winner_update(b.weights, b.pre, b.post, b.mask, b.config, b.lr_plus, b.lr_minus,
                                   b.stride, b.padding, "torch", reduction=reduction)
    assert torch.equal(a.weights, b.weights) and torch.equal(convergence, expected)


def test_native_rejects_float64_weights_and_auto_falls_back_to_torch():
    case = small_case()
    case.weights = case.weights.double()
    with pytest.raises(ValueError, match=r"backend='native' cannot run stdp_update here: they need float32"):
        case.run("native")
    reference = small_case()
    reference.weights = reference.weights.double()
    assert torch.equal(case.run("auto"), reference.run("torch"))


@pytest.mark.parametrize("seed", range(6))
def test_sequential_reduction_applies_the_core_sample_by_sample(seed):
    case = random_case(seed)
    expected = case.weights.clone()
    sequential_stdp_update_(expected, case.pre, case.post, case.mask, case.lr_plus, case.lr_minus,
                            case.config.variant, case.config.weight_min, case.config.weight_max,
                            case.stride, case.padding)
    convergence = fused_winner_update(case.weights, case.pre, case.post, case.mask, case.config,
                                      case.lr_plus, case.lr_minus, case.stride, case.padding, "auto",
                                      reduction="sequential")
    assert torch.equal(case.weights, expected)
    assert torch.equal(convergence, channel_convergence(expected, case.config.weight_min, case.config.weight_max))


def test_unknown_reduction_raises():
    case = small_case()
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sequential', got 'sum'"):
        fused_winner_update(case.weights, case.pre, case.post, None, case.config, reduction="sum")


def test_cupy_backend_on_cpu_tensors_raises():
    case = small_case()
    with pytest.raises(ValueError, match=r"backend='cupy' runs on cuda tensors, got tensors on cpu"):
        case.run("cupy")
    assert torch.equal(case.weights, small_case().weights)


@pytest.mark.parametrize("backend", ["gpu", "CUDA", "", None, 1])
def test_unknown_backend_raises(backend):
    with pytest.raises(ValueError, match=r"backend must be one of 'auto', 'torch', 'native', 'cupy'"):
        small_case().run(backend)
    assert BACKENDS == ("auto", "torch", "native", "cupy")


# --------------------------------------------------------------------------- torch path (CPU)


def test_torch_path_hand_computed():
    # channel 0: winner (0,0) t=1 sees [[0,1],[2,3]] -> P P / D D; winner (1,1) t=2 sees
    # [[3,0],[1,2]] -> D P / P P; fraction [[.5, 1], [.5, .5]], f(0.5) = 0.25,
    # delta = 0.25 * (0.6 * fraction - 0.2) = 0.025 or 0.1.
    case = small_case()
    convergence = case.run("torch")
    expected = torch.tensor([[[[0.525, 0.6], [0.525, 0.525]]], [[[0.5, 0.2], [0.9, 1.0]]]])
    torch.testing.assert_close(case.weights, expected, atol=1e-7, rtol=0)
    torch.testing.assert_close(convergence, torch.tensor([(3 * 0.525 * 0.475 + 0.24) / 4, 0.5 / 4]),
                               atol=1e-7, rtol=0)
    assert convergence.dtype == torch.float32


def test_torch_path_hand_computed_stride_padding_additive_tensor_rates():
    # 3x3 kernel, stride 2, padding 1 over a 2x2 input: one output, whose field is the
    # input framed by padding. Potentiated: t_pre 0 and 1 (<= t_post 1); depressed: 5, inf
    # and the 5 padding positions. Additive: 0.99 + 0.05 clamps to 1, 0.99 - 0.02 = 0.97.
    weights = torch.full((1, 1, 3, 3), 0.99)
    case = Case(weights, torch.tensor([[[[0.0, 5.0], [1.0, INF]]]]), torch.ones(1, 1, 1, 1), None,
                STDPConfig(variant=STDPVariant.ADDITIVE), torch.tensor(0.05), torch.tensor(0.02), 2, 1)
    convergence = case.run("torch")
    expected = torch.full((1, 1, 3, 3), 0.97)
    expected[0, 0, 1, 1] = expected[0, 0, 2, 1] = 1.0
    torch.testing.assert_close(weights, expected, atol=1e-7, rtol=0)
    torch.testing.assert_close(convergence, torch.tensor([7 * 0.97 * 0.03 / 9]), atol=1e-7, rtol=0)


def test_defaults_come_from_config():
    a, b = small_case(), small_case()
    a.config = b.config = STDPConfig(lr_plus=0.4, lr_minus=0.2)
    fused_winner_update(a.weights, a.pre, a.post, a.mask, a.config)
    b.run("torch")
    assert torch.equal(a.weights, b.weights)


@pytest.mark.parametrize("seed", range(24))
def test_torch_path_matches_naive_reference(seed):
    case = random_case(seed)
    expected = naive_update(case)
    convergence = case.run("torch")
    torch.testing.assert_close(case.weights.double(), expected["weights"], atol=1e-6, rtol=0)
    torch.testing.assert_close(convergence.double(), expected["convergence"], atol=1e-6, rtol=0)


def test_updates_parameter_in_place_and_non_contiguous():
    case = small_case()
    parameter = torch.nn.Parameter(case.weights.clone())
    pointer = parameter.data_ptr()
    fused_winner_update(parameter, case.pre, case.post, case.mask, case.config, 0.4, 0.2)
    assert parameter.data_ptr() == pointer and parameter.requires_grad and parameter.grad is None
    transposed = small_case().weights.transpose(2, 3).contiguous().transpose(2, 3)
    assert not transposed.is_contiguous()
    fused_winner_update(transposed, case.pre, case.post, case.mask, case.config, 0.4, 0.2)
    assert torch.equal(transposed, parameter.detach())


@pytest.mark.parametrize(
    "change, error, message",
    [
        (dict(weights=torch.zeros(2, 1, 2)), ValueError, r"weights must be a 4-D tensor"),
        (dict(weights=torch.zeros(2, 1, 2, 3)), ValueError, r"weights must have square kernels"),
        (dict(weights=torch.zeros(2, 1, 2, 2, dtype=torch.long)), TypeError, r"weights must be a floating"),
        (dict(pre=torch.zeros(1, 2, 3, 3)), ValueError, r"pre_spike_times must have C_in=1"),
        (dict(pre=torch.zeros(1, 1, 3, 3, dtype=torch.int32)), TypeError, r"pre_spike_times must be a floating"),
        (dict(post=torch.zeros(1, 2, 3, 3)), ValueError, r"post_spike_times must have shape \[1, 2, 2, 2\]"),
        (dict(mask=torch.zeros(1, 2, 2, 3, dtype=torch.bool)), ValueError, r"winner_mask must have the shape"),
        (dict(stride=0), ValueError, r"stride must be >= 1"),
        (dict(padding=-1), ValueError, r"padding must be >= 0"),
        (dict(lr_plus=-0.1), ValueError, r"lr_plus must be >= 0"),
        (dict(lr_minus=torch.zeros(2)), ValueError, r"lr_minus must be a float or a 0-dim tensor"),
        (dict(config={"lr_plus": 0.1}), TypeError, r"config must be an STDPConfig, got dict"),
        (dict(weights=[[0.5]]), TypeError, r"weights must be a torch.Tensor"),
    ],
)
def test_bad_inputs_name_the_argument(change, error, message):
    case = small_case()
    for key, value in change.items():
        setattr(case, key, value)
    with pytest.raises(error, match=message):
        case.run("auto")


def test_kernel_too_large_for_input_raises():
    case = Case(torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 1, 1), None,
                STDPConfig(), 0.1, 0.1, 1, 0)
    with pytest.raises(ValueError, match=r"smaller than a 5x5 kernel with padding 0"):
        case.run("torch")


# --------------------------------------------------------------------------- CuPy path (GPU)


def assert_backends_agree(case: Case) -> None:
    """Run both backends on copies of a CUDA case and compare (atol 1e-6)."""
    torch_case = case.to("cuda")
    cupy_case = replace(torch_case, weights=torch_case.weights.clone())
    cupy_convergence = cupy_case.run("cupy")
    torch_convergence = torch_case.run("torch")
    torch.testing.assert_close(cupy_case.weights, torch_case.weights, atol=1e-6, rtol=0)
    torch.testing.assert_close(cupy_convergence, torch_convergence, atol=1e-6, rtol=0)


def wta_case(c_in: int, c_out: int, size: int, k: int, padding: int, batch: int, winners: int, seed: int) -> Case:
    """A reference-network layer: latency-coded inputs, ``winners`` per sample."""
    g = torch.Generator().manual_seed(seed)
    out = conv_output_size(size, k, 1, padding)
    pre = torch.randint(0, 15, (batch, c_in, size, size), generator=g).float()
    pre = pre.masked_fill(torch.rand(pre.shape, generator=g) < 0.6, INF)
    post = torch.randint(0, 15, (batch, c_out, out, out), generator=g).float()
    flat = torch.rand(batch, c_out * out * out, generator=g).argsort(dim=1)[:, :winners]
    mask = torch.zeros(batch, c_out * out * out, dtype=torch.bool).scatter_(1, flat, True).view(post.shape)
    weights = (0.8 + 0.05 * torch.randn(c_out, c_in, k, k, generator=g)).clamp(0, 1)
    return Case(weights, pre, post, mask, STDPConfig.from_paper("kheradpisheh2018"), 0.004, 0.003, 1, padding)


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.gpu
@requires_gpu
def test_cupy_matches_torch_random(seed):
    assert_backends_agree(random_case(seed, max_size=20))


@pytest.mark.parametrize("batch", [1, 64, 256])
@pytest.mark.parametrize("layer", ["conv1", "conv2"])
@pytest.mark.gpu
@requires_gpu
def test_cupy_matches_torch_reference_layers(layer, batch):
    shape = dict(conv1=(2, 32, 28, 5, 2, 5), conv2=(32, 150, 17, 2, 0, 8))[layer]
    assert_backends_agree(wta_case(*shape, batch=batch, seed=batch))


@pytest.mark.gpu
@requires_gpu
def test_cupy_dense_winners_and_many_synapses():
    # mask None: every finite post time wins (thousands per channel); 40*5*5 = 1000 synapses.
    case = wta_case(40, 6, 12, 5, 1, batch=16, winners=1, seed=3)
    case.mask = None
    assert_backends_agree(case)


@pytest.mark.gpu
@requires_gpu
def test_cupy_is_deterministic():
    base = wta_case(32, 150, 17, 2, 0, batch=64, winners=8, seed=5).to("cuda")
    base.mask = None  # heavy contention on the integer atomics
    results = []
    for _ in range(3):
        case = replace(base, weights=base.weights.clone())
        results.append((case.run("cupy"), case.weights))
    for convergence, weights in results[1:]:
        assert torch.equal(convergence, results[0][0]) and torch.equal(weights, results[0][1])


@pytest.mark.gpu
@requires_gpu
def test_cupy_parameter_non_contiguous_and_side_stream():
    case = random_case(4).to("cuda")
    reference = replace(case, weights=case.weights.clone())
    reference_convergence = reference.run("torch")
    parameter = torch.nn.Parameter(case.weights.transpose(0, 1).contiguous().transpose(0, 1))
    assert not parameter.is_contiguous()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        convergence = fused_winner_update(parameter, case.pre, case.post, case.mask, case.config,
                                          case.lr_plus, case.lr_minus, case.stride, case.padding, "cupy")
    side.synchronize()
    torch.testing.assert_close(parameter.detach(), reference.weights, atol=1e-6, rtol=0)
    torch.testing.assert_close(convergence, reference_convergence, atol=1e-6, rtol=0)


@pytest.mark.gpu
@requires_gpu
def test_cupy_dispatch_rules_on_cuda():
    weights = torch.zeros(1, 1, 1, 1, device="cuda")
    pre, post = torch.zeros(1, 1, 1, 1, device="cuda"), torch.zeros(1, 1, 1, 1, device="cuda")
    assert resolve_backend("stdp_update", "auto", weights.device) == "cupy"
    with pytest.raises(ValueError, match=r"backend='cupy' cannot run stdp_update here: they need float32"):
        fused_winner_update(weights.double(), pre, post, None, STDPConfig(), backend="cupy")
    fused_winner_update(weights, pre, post, None, STDPConfig(), backend="cupy", reduction="sequential")
    case = random_case(8).to("cuda")
    case.lr_plus, case.lr_minus = torch.tensor(0.1, device="cuda"), torch.tensor(0.05)
    assert_backends_agree(case)
