"""The released DMD3C objective vs a plain-loop transcription of the release (float64)."""

from __future__ import annotations

import pytest
import torch

from train.losses.released import (
    RELEASED_SCALE_WEIGHTS,
    draw_crops,
    released_stage2_loss,
    rpnl,
)


def reference_loss(outputs: list[torch.Tensor], gt: torch.Tensor, teacher01: torch.Tensor
                   ) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    """The release read line by line: MSMSE, then for each scale 32 crops drawn in turn, one
    image at a time, torch.median for the medians. Also returns the crops it drew."""
    weights = [2.0 ** (-2 * k) for k in (5, 4, 3, 2, 1, 0)]
    target = 1 / (teacher01 + 0.5)
    total = torch.zeros((), dtype=gt.dtype)
    seen = []
    for pred, weight in zip(outputs, weights, strict=True):
        mask = (gt > 1e-3).to(gt.dtype)
        total = total + weight * ((pred * mask - gt * mask) ** 2).mean()
        height, width = pred.shape[-2:]
        scale_sum = torch.zeros((), dtype=gt.dtype)
        for _ in range(32):
            r = torch.rand(1).item() * 0.375 + 0.125
            h, w = int(height * r), int(width * r)
            top = int(torch.randint(0, height - h + 1, (1,)).item())
            left = int(torch.randint(0, width - w + 1, (1,)).item())
            seen.append((top, left, h, w))
            abs_sum = torch.zeros((), dtype=gt.dtype)
            for b in range(pred.shape[0]):
                normed = []
                for img in (pred[b, 0], target[b, 0]):
                    patch = img[top:top + h, left:left + w].flatten()
                    med = torch.median(patch)
                    mad = torch.median(torch.abs(patch - med))
                    normed.append((patch - med) / (mad + 1e-6))
                abs_sum = abs_sum + torch.abs(normed[0] - normed[1]).sum()
            scale_sum = scale_sum + abs_sum / (pred.shape[0] * h * w)
        total = total + weight * scale_sum / 32
    return total, seen


def make_inputs(batch: int, height: int, width: int, seed: int
                ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    outputs = [(torch.rand(batch, 1, height, width, generator=gen, dtype=torch.float64) * 60
                + 1).requires_grad_() for _ in range(6)]
    gt = torch.rand(batch, 1, height, width, generator=gen, dtype=torch.float64) * 70
    gt = gt * (torch.rand(gt.shape, generator=gen, dtype=torch.float64) < 0.2)
    teacher = torch.randint(0, 256, gt.shape, generator=gen).to(torch.float64) / 255
    return outputs, gt, teacher


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize(("batch", "height", "width", "seed"),
                         [(1, 8, 8, 0), (2, 16, 40, 1), (3, 24, 19, 2), (2, 33, 64, 3)])
def test_value_and_gradient_equal_the_transcription(batch: int, height: int, width: int,
                                                    seed: int, batched: bool) -> None:
    outputs, gt, teacher = make_inputs(batch, height, width, seed)
    torch.manual_seed(100 + seed)
    ours = released_stage2_loss(outputs, gt, teacher, batched=batched)
    after_ours = torch.rand(1)
    grads_ours = torch.autograd.grad(ours.total, outputs)
    torch.manual_seed(100 + seed)
    ref, crops = reference_loss(outputs, gt, teacher)
    assert torch.equal(torch.rand(1), after_ours)  # the same number of draws from the generator
    grads_ref = torch.autograd.grad(ref, outputs)
    assert ours.total.item() == pytest.approx(ref.item(), rel=1e-12, abs=1e-12)
    for g_ours, g_ref in zip(grads_ours, grads_ref, strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-12)
    counts = {h * w % 2 for _, _, h, w in crops}
    if height * width > 64:
        assert counts == {0, 1}  # even-count (lower-middle) medians and odd ones both checked


def test_terms_add_up_and_are_weighted() -> None:
    outputs, gt, teacher = make_inputs(2, 16, 32, 7)
    torch.manual_seed(3)
    loss = released_stage2_loss(outputs, gt, teacher)
    assert len(loss.gt_per_scale) == len(loss.teacher_per_scale) == 6
    torch.testing.assert_close(loss.total, loss.gt + loss.teacher)
    mask = gt > 1e-3
    expected_gt = sum(w * ((o - gt)[mask] ** 2).sum().item() / gt.numel()
                      for o, w in zip(outputs, RELEASED_SCALE_WEIGHTS, strict=True))
    assert loss.gt.item() == pytest.approx(expected_gt, rel=1e-12)


def test_same_seed_same_value_other_seed_other_value() -> None:
    outputs, gt, teacher = make_inputs(2, 16, 32, 11)
    values = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        values.append(released_stage2_loss(outputs, gt, teacher).teacher.item())
    assert values[0] == values[1] != values[2]


def test_explicit_generator_leaves_the_global_one_alone() -> None:
    outputs, gt, teacher = make_inputs(1, 16, 16, 12)
    torch.manual_seed(9)
    expected = released_stage2_loss(outputs, gt, teacher).total.item()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    got = released_stage2_loss(outputs, gt, teacher, generator=torch.Generator().manual_seed(9))
    assert got.total.item() == expected
    assert torch.equal(torch.get_rng_state(), before)


def test_affine_prediction_of_the_target_has_no_rpnl() -> None:
    teacher = torch.rand(2, 1, 24, 40, dtype=torch.float64)
    target = 1 / (teacher + 0.5)
    pred = 3.0 * target + 2.0
    crops = draw_crops(24, 40, generator=torch.Generator().manual_seed(0))
    for batched in (False, True):
        assert float(rpnl(pred, target, crops, batched)) < 1e-5
        assert float(rpnl(-pred, target, crops, batched)) > 0.5  # a flipped order costs


def test_crop_draws_follow_the_release_arithmetic() -> None:
    gen = torch.Generator().manual_seed(4)
    crops = draw_crops(256, 1216, generator=gen)
    gen.manual_seed(4)
    for crop in crops:
        r = torch.rand(1, generator=gen).item() * 0.375 + 0.125
        assert (crop.height, crop.width) == (int(256 * r), int(1216 * r))
        assert crop.top == torch.randint(0, 256 - crop.height + 1, (1,), generator=gen).item()
        assert crop.left == torch.randint(0, 1216 - crop.width + 1, (1,), generator=gen).item()
        assert 32 <= crop.height <= 128 and crop.top + crop.height <= 256


def test_bad_shapes() -> None:
    outputs, gt, teacher = make_inputs(1, 16, 16, 0)
    with pytest.raises(ValueError, match="6 outputs"):
        released_stage2_loss(outputs[:5], gt, teacher)
    with pytest.raises(ValueError, match="full resolution"):
        released_stage2_loss([o[..., ::2, ::2] for o in outputs], gt, teacher)
    with pytest.raises(ValueError, match="at least 8"):
        draw_crops(7, 100)
