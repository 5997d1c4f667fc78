"""DMD3C++ objective vs an independent transcription (float64) and analytic cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from train.losses.dmdpp import dmdpp_stage2_loss, fit_scale_shift, ssi_active, ssi_loss


def reference_ssi(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One image at a time: normal equations solved by torch.linalg.solve, then the aligned
    MSE over twice the valid count plus 0.5 x the gradient term summed over steps 1, 2, 4, 8."""
    residuals = []
    for p, t, m in zip(pred, target, mask, strict=True):
        sel = m > 0
        ps, ts = p[sel], t[sel]
        lhs = torch.stack([torch.stack([(ps * ps).sum(), ps.sum()]),
                           torch.stack([ps.sum(), sel.sum().to(p.dtype)])])
        rhs = torch.stack([(ps * ts).sum(), ts.sum()])
        if torch.linalg.det(lhs).abs() > 0:
            scale, shift = torch.linalg.solve(lhs, rhs)
        else:
            scale, shift = p.new_zeros(()), p.new_zeros(())
        residuals.append(scale * p + shift - t)
    res = torch.stack(residuals)
    total = (mask * res**2).sum() / (2 * mask.sum())
    for k in range(4):
        r, m = res[:, :: 2**k, :: 2**k], mask[:, :: 2**k, :: 2**k]
        e = r * m
        both_x = m[:, :, 1:] * m[:, :, :-1]
        both_y = m[:, 1:, :] * m[:, :-1, :]
        num = (torch.diff(e, dim=2).abs() * both_x).sum() + (torch.diff(e, dim=1).abs()
                                                              * both_y).sum()
        total = total + 0.5 * num / m.sum()
    return total


def reference_total(outputs: list[torch.Tensor], gt: torch.Tensor, teacher: torch.Tensor,
                    with_ssi: bool) -> torch.Tensor:
    total = torch.zeros((), dtype=gt.dtype)
    ssi_w = [1 / 1024, 1 / 256, 1 / 64, 1 / 16, 1 / 4, 0.05]
    for s, pred in enumerate(outputs):
        size = pred.shape[-2:]
        g = F.interpolate(gt, size=size, mode="nearest")
        valid = g > 1e-3
        total = total + 4.0 ** (s - 5) * ((pred - g)[valid] ** 2).sum() / valid.sum()
        if with_ssi:
            t = F.interpolate(teacher, size=size, mode="bilinear", align_corners=False)[:, 0]
            total = total + 0.2 * ssi_w[s] * reference_ssi(pred[:, 0], t, (t > 1e-3).double())
    return total


def make_inputs(batch: int, height: int, width: int, seed: int, native: bool
                ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sizes = [(height >> (5 - s), width >> (5 - s)) if native else (height, width)
             for s in range(6)]
    outputs = [(torch.rand(batch, 1, h, w, generator=gen, dtype=torch.float64) * 50 + 1)
               .requires_grad_() for h, w in sizes]
    gt = torch.rand(batch, 1, height, width, generator=gen, dtype=torch.float64) * 70
    gt = gt * (torch.rand(gt.shape, generator=gen, dtype=torch.float64) < 0.3)
    teacher = torch.rand(gt.shape, generator=gen, dtype=torch.float64) * 40
    teacher = teacher * (torch.rand(gt.shape, generator=gen, dtype=torch.float64) < 0.9)
    return outputs, gt, teacher


@pytest.mark.parametrize(("batch", "height", "width", "seed", "native"),
                         [(1, 64, 64, 0, False), (2, 64, 96, 1, True), (3, 96, 64, 2, False)])
@pytest.mark.parametrize("epoch", [0, 24, 25])
def test_value_and_gradient_equal_the_transcription(batch: int, height: int, width: int,
                                                    seed: int, native: bool, epoch: int) -> None:
    outputs, gt, teacher = make_inputs(batch, height, width, seed, native)
    ours = dmdpp_stage2_loss(outputs, gt, teacher, epoch=epoch)
    ref = reference_total(outputs, gt, teacher, with_ssi=epoch < 25)
    assert ours.total.item() == pytest.approx(ref.item(), rel=1e-12)
    for g_ours, g_ref in zip(torch.autograd.grad(ours.total, outputs),
                             torch.autograd.grad(ref, outputs), strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-14)
    assert (ours.teacher.item() > 0) == (epoch < 25)
    torch.testing.assert_close(ours.total, ours.gt + ours.teacher)


def test_switch_is_a_function_of_epoch() -> None:
    assert [ssi_active(e) for e in (0, 24, 25, 29)] == [True, True, False, False]
    assert ssi_active(9, off_from_epoch=10) and not ssi_active(10, off_from_epoch=10)


def test_affine_map_of_the_teacher_has_zero_ssi() -> None:
    gen = torch.Generator().manual_seed(5)
    teacher = torch.rand(2, 32, 48, generator=gen, dtype=torch.float64) * 30 + 1
    mask = (torch.rand(teacher.shape, generator=gen, dtype=torch.float64) > 0.3).double()
    pred = torch.stack([0.5 * teacher[0] + 3.0, 2.0 * teacher[1] - 1.0])
    scale, shift = fit_scale_shift(pred, teacher, mask)
    torch.testing.assert_close(scale, torch.tensor([2.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(shift, torch.tensor([-6.0, 0.5], dtype=torch.float64))
    assert ssi_loss(pred, teacher, mask).item() < 1e-12  # |gradient| terms: rounding only
    bumped = pred.clone()
    bumped[0, 10, 10] += 1.0
    assert ssi_loss(bumped, teacher, mask).item() > 1e-6


def test_singular_fit_gives_zero_scale_and_shift() -> None:
    pred = torch.full((1, 8, 8), 4.0, dtype=torch.float64)  # constant: singular normal eqs
    target = torch.arange(64, dtype=torch.float64).reshape(1, 8, 8)
    mask = torch.ones_like(pred)
    scale, shift = fit_scale_shift(pred, target, mask)
    assert scale.item() == 0.0 and shift.item() == 0.0
    expected = reference_ssi(pred, target, mask)
    assert ssi_loss(pred, target, mask).item() == pytest.approx(expected.item(), rel=1e-12)


def test_no_valid_teacher_pixel_gives_zero_ssi_with_finite_gradients() -> None:
    pred = torch.rand(2, 16, 16, dtype=torch.float64, requires_grad=True)
    loss = ssi_loss(pred, torch.zeros(2, 16, 16, dtype=torch.float64),
                    torch.zeros(2, 16, 16, dtype=torch.float64))
    (grad,) = torch.autograd.grad(loss, pred)
    assert loss.item() == 0.0 and torch.isfinite(grad).all()


def test_wrong_output_count() -> None:
    outputs, gt, teacher = make_inputs(1, 64, 64, 0, False)
    with pytest.raises(ValueError, match="6 outputs"):
        dmdpp_stage2_loss(outputs[1:], gt, teacher, epoch=0)
