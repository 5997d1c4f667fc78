"""One contract suite over every SSI loss variant (train.losses.ssi.SSI_LOSSES)."""

from __future__ import annotations

import pytest
import torch

from data_schemas.geometry import parse_depth_space
from train.losses.ssi import (
    SSI_LOSS_NAMES,
    fit_scale_shift,
    parse_ssi_loss,
    random_crops,
    ssi_loss,
    to_space,
)

SPACES = ("disparity", "depth")


def _call(name: str, pred: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor,
          space: str) -> torch.Tensor:
    kwargs: dict[str, object] = {"space": space}
    if name == "rpnl":
        kwargs["generator"] = torch.Generator().manual_seed(0)
    if name == "patch":
        kwargs["patch_sizes"] = (16, 32)
    return ssi_loss(name)(pred, teacher, mask, **kwargs)


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pred depth [2,1,48,64] m, an unrelated teacher-ish map, mask with holes)."""
    g = torch.Generator().manual_seed(seed)
    yy = torch.linspace(0, 1, 48)[:, None]
    base = 5 + 40 * (1 - yy) + torch.zeros(48, 64)
    pred = (base + 3 * torch.rand(2, 1, 48, 64, generator=g)).requires_grad_(True)
    other = base + 8 * torch.rand(2, 1, 48, 64, generator=g)
    mask = torch.rand(2, 1, 48, 64, generator=g) > 0.3
    return pred, other, mask


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("name", SSI_LOSS_NAMES)
def test_zero_for_a_perfectly_aligned_pair(name: str, space: str) -> None:
    pred, _, mask = _scene()
    teacher = 0.37 * to_space(pred.detach(), space) + 0.02  # affine image of the prediction
    loss = _call(name, pred, teacher, mask, space)
    assert loss.item() == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("name", SSI_LOSS_NAMES)
def test_invariant_to_scale_and_shift_of_the_teacher_in_its_space(name: str, space: str) -> None:
    pred, teacher, mask = _scene(1)
    teacher = to_space(teacher, space)
    reference = _call(name, pred, teacher, mask, space)
    assert reference.item() > 1e-3
    for scale, shift in ((3.0, 0.5), (0.01, -0.001), (250.0, 7.0)):
        moved = _call(name, pred, scale * teacher + shift, mask, space)
        assert moved.item() == pytest.approx(reference.item(), rel=2e-3, abs=1e-5)


@pytest.mark.parametrize("name", SSI_LOSS_NAMES)
def test_gradients_reach_the_prediction_only(name: str) -> None:
    pred, teacher, mask = _scene(2)
    teacher = (1.0 / teacher).requires_grad_(True)
    loss = _call(name, pred, teacher, mask, "disparity")
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert float(pred.grad.abs().sum()) > 0
    assert teacher.grad is None


@pytest.mark.parametrize("name", SSI_LOSS_NAMES)
def test_ignores_pixels_outside_the_mask(name: str) -> None:
    pred, teacher, mask = _scene(3)
    teacher = 1.0 / teacher
    scrambled = torch.where(mask, teacher, torch.full_like(teacher, 1e3))
    a = _call(name, pred, teacher, mask, "disparity")
    b = _call(name, pred, scrambled, mask, "disparity")
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


@pytest.mark.parametrize("name", SSI_LOSS_NAMES)
def test_empty_mask_gives_zero_with_a_graph(name: str) -> None:
    pred, teacher, mask = _scene(4)
    loss = _call(name, pred, teacher, torch.zeros_like(mask), "disparity")
    assert loss.item() == 0.0
    loss.backward()  # still differentiable
    assert pred.grad is not None


@pytest.mark.parametrize("name", SSI_LOSS_NAMES)
def test_bigger_disagreement_gives_bigger_loss(name: str) -> None:
    pred, teacher, mask = _scene(5)
    aligned = 1.0 / pred.detach()
    g = torch.Generator().manual_seed(9)
    small = aligned * (1 + 0.02 * torch.randn(aligned.shape, generator=g))
    large = aligned * (1 + 0.3 * torch.randn(aligned.shape, generator=g))
    assert _call(name, pred, small, mask, "disparity").item() < (
        _call(name, pred, large, mask, "disparity"))


def test_fit_scale_shift_recovers_affine_map() -> None:
    x = torch.rand(3, 10, 12)
    y = 2.5 * x - 0.75
    scale, shift, ok = fit_scale_shift(x, y, torch.ones_like(x))
    assert ok.all()
    torch.testing.assert_close(scale, torch.full((3,), 2.5))
    torch.testing.assert_close(shift, torch.full((3,), -0.75))


def test_random_crops_respect_size_fractions() -> None:
    crops = random_crops(100, 400, 32, 0.125, 0.5, torch.Generator().manual_seed(0))
    assert len(crops) == 32
    for top, left, h, w in crops:
        assert 12 <= h <= 50 and 50 <= w <= 200
        assert top + h <= 100 and left + w <= 400


def test_parse_names_the_allowed_values() -> None:
    assert parse_ssi_loss("paper") == "paper"
    with pytest.raises(ValueError, match="paper, rpnl, patch"):
        parse_ssi_loss("midas")
    with pytest.raises(ValueError, match="disparity, depth"):
        parse_depth_space("inverse")


def test_shape_mismatch_is_an_error() -> None:
    pred, teacher, mask = _scene()
    with pytest.raises(ValueError, match="shapes differ"):
        _call("paper", pred, teacher[..., :32], mask, "depth")
