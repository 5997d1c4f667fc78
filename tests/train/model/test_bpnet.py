"""BPNet: state-dict contract, full-resolution forward/backward, AMP islands, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

from train.model import BPNet
from train.model import pmp as pmp_module

REFERENCE = (
    Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "bpnet_state_dict.json"
)


@pytest.fixture(scope="module")
def net() -> BPNet:
    torch.manual_seed(0)
    return BPNet()


def make_inputs(height: int, width: int, batch: int = 1, density: float = 0.06, seed: int = 0):
    """Synthetic (rgb [B, 3, H, W] normalised, sparse [B, 1, H, W] metres, K [B, 3, 3])."""
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.randn(batch, 3, height, width, generator=gen)
    depth = 2 + 78 * torch.rand(batch, 1, height, width, generator=gen)
    keep = torch.rand(batch, 1, height, width, generator=gen) < density
    sparse = torch.where(keep, depth, torch.zeros(()))
    K = torch.tensor([[721.5, 0.0, width / 2], [0.0, 721.5, height / 2], [0.0, 0.0, 1.0]])
    return rgb, sparse, K.expand(batch, 3, 3).clone()


def test_state_dict_matches_released_model(net: BPNet) -> None:
    if not REFERENCE.is_file():
        pytest.skip(f"reference state-dict listing not found at {REFERENCE}")
    reference = json.loads(REFERENCE.read_text())
    expected = [(e["key"], tuple(e["shape"]), e["dtype"]) for e in reference["state_dict"]]
    state = net.state_dict()
    ours = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]
    assert ours == expected
    assert len(ours) == reference["num_tensors"] == 1648
    assert sum(p.numel() for p in net.parameters()) == reference["num_parameters"] == 89_873_730


def test_kernel_generators_start_as_identity(net: BPNet) -> None:
    """Released init: the last BN scale of every GenKernel is 0, so kernels are centre-only."""
    for name in ("weight3x3", "weight5x5", "weight7x7"):
        gen = getattr(net.pred0.cspn, name)
        assert torch.count_nonzero(gen.conv[1].conv.bn.weight) == 0


def test_full_resolution_forward_backward(net: BPNet) -> None:
    """256 x 1216, batch 1, CPU, train mode: six finite full-size maps; backward runs."""
    rgb, sparse, K = make_inputs(256, 1216)
    net.train()
    outputs = net(rgb, sparse, K)
    assert len(outputs) == 6
    for out in outputs:
        assert out.shape == (1, 1, 256, 1216) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
    sum(o.mean() for o in outputs).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.conv_img[0].conv.conv.weight.grad.abs().sum() > 0
    net.zero_grad(set_to_none=True)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small-image tests run single-threaded (OpenMP spinning on a shared 2-core box costs
    more than it gains on tiny tensors); the previous setting is restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.usefixtures("one_thread")
def test_eval_mode_is_deterministic(net: BPNet) -> None:
    rgb, sparse, K = make_inputs(64, 128, batch=2)
    net.eval()
    with torch.no_grad():
        first = net(rgb, sparse, K)
        second = net(rgb, sparse, K)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


@pytest.mark.usefixtures("one_thread")
def test_zero_valid_points_give_finite_output(net: BPNet) -> None:
    rgb, sparse, K = make_inputs(64, 96, batch=2)
    sparse[0] = 0.0  # no measurement at all in the first image
    sparse[1, :, :, 50:] = -1.0  # negative = invalid, treated as missing
    net.eval()
    with torch.no_grad():
        outputs = net(rgb, sparse, K)
    assert all(torch.isfinite(o).all() for o in outputs)


@pytest.mark.usefixtures("one_thread")
def test_autocast_keeps_pre_and_post_in_float32(
    net: BPNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under bf16 autocast the propagation (Pre) and refinement (Post) see float32 with
    autocast off; outputs are float32 and finite."""
    seen: list[tuple[torch.dtype, bool]] = []
    real_local_conv = pmp_module.local_conv2d

    def spy(x: Tensor, weight: Tensor) -> Tensor:
        seen.append((weight.dtype, torch.is_autocast_enabled("cpu")))
        return real_local_conv(x, weight)

    monkeypatch.setattr(pmp_module, "local_conv2d", spy)
    hook = net.pred0.prop.register_forward_pre_hook(
        lambda _m, args: seen.append((args[0].dtype, torch.is_autocast_enabled("cpu")))
    )
    rgb, sparse, K = make_inputs(64, 64)
    net.eval()
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = net(rgb, sparse, K)
    finally:
        hook.remove()
    assert seen and all(entry == (torch.float32, False) for entry in seen)
    assert all(o.dtype == torch.float32 and torch.isfinite(o).all() for o in outputs)


def _replace(index: int, value: object) -> Callable[[tuple], tuple]:
    return lambda args: tuple(value if i == index else a for i, a in enumerate(args))


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (_replace(0, torch.zeros(1, 4, 64, 64)), ValueError, "rgb must have shape"),
        (_replace(0, torch.zeros(1, 3, 64, 64, dtype=torch.uint8)), TypeError, "floating"),
        (_replace(1, torch.zeros(1, 1, 64, 32)), ValueError, "sparse must have shape"),
        (_replace(1, torch.zeros(1, 1, 64, 64, dtype=torch.int32)), TypeError, "floating"),
        (_replace(2, torch.eye(4)[None]), ValueError, "K must have shape"),
        (_replace(2, torch.eye(3)), ValueError, "K must have shape"),
        (_replace(2, "K"), TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs_raise(
    net: BPNet, change: Callable[[tuple], tuple], error: type[Exception], match: str
) -> None:
    args = change(make_inputs(64, 64))
    with pytest.raises(error, match=match):
        net(*args)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_sparse_raises(net: BPNet, value: float) -> None:
    rgb, sparse, K = make_inputs(64, 64)
    sparse[0, 0, 3, 4] = value
    with pytest.raises(ValueError, match="non-finite"):
        net(rgb, sparse, K)


@pytest.mark.parametrize(("height", "width"), [(64, 100), (48, 64), (16, 32)])
def test_size_not_multiple_of_32_raises(net: BPNet, height: int, width: int) -> None:
    rgb, sparse, K = make_inputs(height, width)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(rgb, sparse, K)
