"""Hand-written layers against their torch.nn counterparts in float64: outputs, gradients, buffers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from charlab.nn.batchnorm import BatchNorm1d
from charlab.nn.layers import Embedding, FlattenConsecutive, Linear, Sequential, Tanh

DTYPE = torch.float64
BN_TRAIN_STEPS = 4  # enough updates for the running buffers to drift far from (0, 1)
ATOL = 1e-10  # float64 round-off of two orderings of the same sums
INIT_STD_RTOL = 0.05  # std of 100k N(0, 1) draws is within ~0.5% of 1; 5% catches a wrong scale


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed: int = 0, requires_grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=DTYPE).requires_grad_(requires_grad)


def randomise(module: nn.Module, seed: int) -> None:
    """Give every parameter random values, so a swapped weight and bias would show."""
    with torch.no_grad():
        for i, p in enumerate(module.parameters()):
            p.copy_(torch.randn(p.shape, generator=gen(seed + i), dtype=p.dtype))


def twin(ours: nn.Module, theirs: nn.Module) -> None:
    """Same state in both modules: keys must match exactly (strict load)."""
    theirs.load_state_dict(ours.state_dict(), strict=True)


def forward_backward(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor):
    """Output, input gradient and parameter gradients for ``sum(out * upstream)``."""
    x = x.detach().clone().requires_grad_(x.is_floating_point())
    for p in module.parameters():
        p.grad = None
    out = module(x)
    (out * upstream).sum().backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return out.detach(), (x.grad.clone() if x.grad is not None else None), grads


def assert_same_pass(ours, theirs, x, upstream):
    """One forward/backward through both: same output, input gradient and parameter gradients."""
    out, gx, grads = forward_backward(ours, x, upstream)
    out_ref, gx_ref, grads_ref = forward_backward(theirs, x, upstream)
    torch.testing.assert_close(out, out_ref, atol=ATOL, rtol=0)
    if gx is not None:
        torch.testing.assert_close(gx, gx_ref, atol=ATOL, rtol=0)
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ref[name], atol=ATOL, rtol=0)


# --- Embedding ---------------------------------------------------------------------------------


def test_embedding_matches_torch():
    ours = Embedding(27, 10, dtype=DTYPE)
    theirs = nn.Embedding(27, 10, dtype=DTYPE)
    twin(ours, theirs)
    idx = torch.randint(0, 27, (32, 3), generator=gen(1))  # (B, T)
    assert_same_pass(ours, theirs, idx, randn(32, 3, 10, seed=2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]


def test_embedding_init_is_standard_normal():
    weight = Embedding(1000, 100).weight
    assert abs(weight.std().item() - 1.0) < INIT_STD_RTOL and abs(weight.mean().item()) < INIT_STD_RTOL


# --- Linear ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(16, 30), (4, 5, 30)], ids=["(N,in)", "(N,T,in)"])
def test_linear_matches_torch(bias, shape):
    ours = Linear(30, 20, bias=bias, dtype=DTYPE)
    theirs = nn.Linear(30, 20, bias=bias, dtype=DTYPE)
    randomise(ours, seed=3)
    twin(ours, theirs)
    assert_same_pass(ours, theirs, randn(*shape, seed=4), randn(*shape[:-1], 20, seed=5))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert (ours.bias is None) == (not bias)


@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_linear_init_is_fan_in_with_gain(gain):
    layer = Linear(400, 250, gain=gain)
    assert layer.weight.std().item() == pytest.approx(gain / math.sqrt(400), rel=INIT_STD_RTOL)
    assert torch.count_nonzero(layer.bias) == 0


# --- BatchNorm1d -------------------------------------------------------------------------------

BN_CONFIGS = [
    dict(momentum=0.1),
    dict(momentum=0.001),
    dict(momentum=None),  # cumulative average over num_batches_tracked
    dict(affine=False),
    dict(eps=0.5),
    dict(track_running_stats=False),
]


def bn_pair(channels: int, **kwargs):
    ours = BatchNorm1d(channels, dtype=DTYPE, **kwargs)
    theirs = nn.BatchNorm1d(channels, dtype=DTYPE, **kwargs)
    randomise(ours, seed=6)
    twin(ours, theirs)
    return ours, theirs


def channels_last(t: torch.Tensor) -> torch.Tensor:
    """(N, C, L) <-> (N, L, C); for 2-D tensors the identity."""
    return t.transpose(1, 2) if t.dim() == 3 else t


def run_bn_steps(ours, theirs, shape, seed: int):
    """Several training steps (output, input and parameter grads each), then eval mode."""
    channels = shape[-1]
    for step in range(BN_TRAIN_STEPS):
        x = randn(*shape, seed=seed + step) * (step + 2) + step  # shifting mean and scale
        upstream = randn(*shape, seed=seed + 100 + step)
        out, gx, grads = forward_backward(ours, x, upstream)
        out_ref, gx_ref, grads_ref = forward_backward(theirs, channels_last(x), channels_last(upstream))
        torch.testing.assert_close(out, channels_last(out_ref), atol=ATOL, rtol=0)
        torch.testing.assert_close(gx, channels_last(gx_ref), atol=ATOL, rtol=0)
        for name in grads_ref:
            torch.testing.assert_close(grads[name], grads_ref[name], atol=ATOL, rtol=0)
    for name, buf in theirs.named_buffers():
        torch.testing.assert_close(getattr(ours, name), buf, atol=ATOL, rtol=0)
    ours.eval()
    theirs.eval()
    x = randn(*shape, seed=seed + 999)
    out, gx, _ = forward_backward(ours, x, randn(*shape, seed=seed + 998))
    out_ref, gx_ref, _ = forward_backward(theirs, channels_last(x), channels_last(randn(*shape, seed=seed + 998)))
    torch.testing.assert_close(out, channels_last(out_ref), atol=ATOL, rtol=0)
    torch.testing.assert_close(gx, channels_last(gx_ref), atol=ATOL, rtol=0)
    assert out.shape[-1] == channels


@pytest.mark.parametrize("kwargs", BN_CONFIGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("shape", [(32, 7), (8, 5, 7)], ids=["(N,C)", "(N,L,C)"])
def test_batchnorm_matches_torch(kwargs, shape):
    ours, theirs = bn_pair(shape[-1], **kwargs)
    run_bn_steps(ours, theirs, shape, seed=10)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_batchnorm_buffers_moved_and_unbiased_variance_stored():
    """After one step with momentum 1 the running variance is the unbiased batch variance."""
    bn = BatchNorm1d(3, momentum=1.0, dtype=DTYPE)
    x = randn(10, 3, seed=20) * 4 + 2
    out = bn(x)
    torch.testing.assert_close(bn.running_mean, x.mean(0))
    torch.testing.assert_close(bn.running_var, x.var(0, correction=1))
    torch.testing.assert_close(out.var(0, correction=0), torch.ones(3, dtype=DTYPE), atol=1e-4, rtol=0)


def test_batchnorm_state_dict_loads_across_after_training():
    ours, theirs = bn_pair(5, momentum=0.3)
    for step in range(BN_TRAIN_STEPS):
        ours(randn(16, 5, seed=30 + step) + 3)
    fresh = nn.BatchNorm1d(5, dtype=DTYPE)
    fresh.load_state_dict(ours.state_dict())
    back = BatchNorm1d(5, dtype=DTYPE)
    back.load_state_dict(fresh.state_dict())
    for name, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], value)
    assert int(back.num_batches_tracked) == BN_TRAIN_STEPS


def test_batchnorm_one_value_per_channel_in_training_is_an_error():
    with pytest.raises(ValueError, match="more than one value"):
        BatchNorm1d(4)(torch.randn(1, 4))
    bn = BatchNorm1d(4).eval()
    assert bn(torch.randn(1, 4)).shape == (1, 4)


def test_batchnorm_rejects_other_ranks():
    with pytest.raises(ValueError, match=r"\(N, C\) or \(N, L, C\)"):
        BatchNorm1d(4)(torch.randn(2, 3, 4, 5))


# --- Tanh, FlattenConsecutive, Sequential ------------------------------------------------------


def test_tanh_matches_torch():
    x = randn(6, 9, seed=40) * 3
    assert_same_pass(Tanh(), nn.Tanh(), x, randn(6, 9, seed=41))


@pytest.mark.parametrize("n,length", [(2, 8), (4, 8), (8, 8), (1, 5)])
def test_flatten_consecutive_is_a_reshape(n, length):
    x = randn(3, length, 4, seed=42)  # (B, T, C)
    expected = x.reshape(3, length // n, 4 * n)  # (B, T/n, C*n)
    if length // n == 1:
        expected = expected.squeeze(1)  # (B, C*n)
    out = FlattenConsecutive(n)(x)
    assert torch.equal(out, expected)
    assert torch.equal(out.reshape(3, -1), x.reshape(3, -1))  # consecutive positions stay together


def test_flatten_consecutive_needs_divisible_length():
    with pytest.raises(ValueError, match="divisible by 3"):
        FlattenConsecutive(3)(torch.randn(2, 8, 4))


def torch_net():
    return nn.Sequential(nn.Embedding(27, 10), nn.Flatten(), nn.Linear(30, 200, bias=False),
                         nn.BatchNorm1d(200), nn.Tanh(), nn.Linear(200, 27)).to(DTYPE)


def our_net():
    return Sequential(Embedding(27, 10), FlattenConsecutive(3), Linear(30, 200, bias=False),
                      BatchNorm1d(200), Tanh(), Linear(200, 27)).to(DTYPE)


def test_sequential_naming_and_container():
    net = our_net()
    assert [name for name, _ in net.named_children()] == [str(i) for i in range(6)]
    assert len(net) == 6 and isinstance(net[3], BatchNorm1d) and list(net)[5] is net[5]
    assert list(net.state_dict()) == list(torch_net().state_dict())


def test_sequential_network_matches_torch_end_to_end():
    """The lecture's MLP built twice, state moved across: same logits, gradients and buffers."""
    ours, theirs = our_net(), torch_net()
    randomise(ours, seed=50)
    twin(ours, theirs)
    for step in range(BN_TRAIN_STEPS):
        idx = torch.randint(0, 27, (32, 3), generator=gen(60 + step))  # (B, block_size)
        assert_same_pass(ours, theirs, idx, randn(32, 27, seed=70 + step))
    for (name, buf), (name_ref, buf_ref) in zip(ours.named_buffers(), theirs.named_buffers()):
        assert name == name_ref
        torch.testing.assert_close(buf, buf_ref, atol=ATOL, rtol=0)
    ours.eval()
    theirs.eval()
    idx = torch.randint(0, 27, (5, 3), generator=gen(80))
    torch.testing.assert_close(ours(idx), theirs(idx), atol=ATOL, rtol=0)


def test_reset_parameters_restores_initial_state():
    bn = BatchNorm1d(3)
    randomise(bn, seed=90)
    bn(torch.randn(8, 3) + 5)
    bn.reset_parameters()
    fresh = BatchNorm1d(3)
    for name, value in fresh.state_dict().items():
        assert torch.equal(bn.state_dict()[name], value)
