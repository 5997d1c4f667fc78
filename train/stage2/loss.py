"""The stage-2 objective of a recipe: ``loss.objective`` picks the formula, the config its
weights (the formulas live in :mod:`train.losses`; this module only wires them).

* ``released`` (:func:`train.losses.released.released_stage2_loss`): sum_s d_s MSMSE_s +
  sum_s teacher_weight * t_s * RPNL_s(pred_s, 1 / (teacher01 + 0.5)), crops from torch's
  global generator (seeded per rank by the engine);
* ``dmdpp`` (:func:`train.losses.dmdpp.dmdpp_stage2_loss`): sum_s d_s MSE_s over valid GT +
  [epoch < off] sum_s teacher_weight * t_s * SSI_s(pred_s, teacher);
* ``ours``: BP-Net's multi-scale ``supervised`` loss on valid GT + sum over outputs with
  t_s != 0 of teacher_weight * t_s * SSI variant ``ssi`` (``train.losses.ssi``).

The teacher term is left out (no teacher maps read) when ``teacher_weight`` is 0 and from
epoch ``teacher_off_from_epoch`` on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from train.datasets.sample import Batch
from train.engine import LossTerms
from train.losses.dmdpp import dmdpp_stage2_loss
from train.losses.pixel import multiscale_loss
from train.losses.released import released_gt_term, released_stage2_loss
from train.losses.ssi import ssi_loss
from train.stage2.config import Stage2LossConfig

NEVER = 2**62
"""An epoch the teacher term is never switched off at."""


def teacher_active(cfg: Stage2LossConfig, epoch: int) -> bool:
    """Whether the teacher term is part of the loss in 0-based ``epoch``."""
    off = cfg.teacher_off_from_epoch
    return cfg.uses_teacher and (off is None or epoch < off)


def _teacher_weights(cfg: Stage2LossConfig) -> list[float]:
    return [cfg.teacher_weight * w for w in cfg.teacher_scale_weights]


def _terms(gt: Sequence[Tensor], teacher: Sequence[Tensor]) -> dict[str, Tensor]:
    """Weighted per-scale terms (coarsest first) and their sums, detached, for logging."""
    scalars = {f"gt_scale{i}": t.detach() for i, t in enumerate(gt)}
    scalars |= {f"teacher_scale{i}": t.detach() for i, t in enumerate(teacher)}
    scalars["gt"] = torch.stack([t.detach() for t in gt]).sum()
    if teacher:
        scalars["teacher"] = torch.stack([t.detach() for t in teacher]).sum()
    return scalars


def _need_teacher(batch: Batch, cfg: Stage2LossConfig) -> Tensor:
    if batch.teacher is None:
        raise ValueError(f"loss.objective={cfg.objective} with a teacher term, but the batch "
                         f"carries no teacher maps")
    return batch.teacher.float()


def _released(preds: Sequence[Tensor], batch: Batch, cfg: Stage2LossConfig,
              epoch: int) -> LossTerms:
    if not teacher_active(cfg, epoch):
        gt = [w * released_gt_term(p, batch.target) for p, w in zip(preds, cfg.scale_weights,
                                                                     strict=True)]
        return LossTerms(torch.stack(gt).sum(), _terms(gt, []))
    out = released_stage2_loss(preds, batch.target, _need_teacher(batch, cfg),
                               gt_weights=cfg.scale_weights,
                               teacher_weights=_teacher_weights(cfg))
    return LossTerms(out.total, _terms(out.gt_per_scale, out.teacher_per_scale))


def _dmdpp(preds: Sequence[Tensor], batch: Batch, cfg: Stage2LossConfig,
           epoch: int) -> LossTerms:
    active = teacher_active(cfg, epoch)
    teacher = _need_teacher(batch, cfg) if active else torch.zeros_like(batch.target)
    out = dmdpp_stage2_loss(preds, batch.target, teacher, epoch,
                            ssi_off_from_epoch=NEVER if active else 0,
                            gt_weights=cfg.scale_weights,
                            ssi_weights=cfg.teacher_scale_weights,
                            lambda_ssi=cfg.teacher_weight)
    return LossTerms(out.total, _terms(out.gt_per_scale, out.teacher_per_scale))


def _ssi_kwargs(cfg: Stage2LossConfig) -> dict[str, object]:
    if cfg.ssi == "paper":
        return {"grad_weight": cfg.grad_weight}
    if cfg.ssi == "patch":
        return {"grad_weight": cfg.grad_weight, "patch_sizes": tuple(cfg.patch_sizes)}
    return {"num_crops": cfg.rpnl_crops, "min_frac": cfg.rpnl_min_frac,
            "max_frac": cfg.rpnl_max_frac}


def _ours(preds: Sequence[Tensor], batch: Batch, cfg: Stage2LossConfig, epoch: int,
          space: str) -> LossTerms:
    total, raw = multiscale_loss(preds, batch.target, batch.target > 0, cfg.scale_weights,
                                 cfg.supervised)
    gt = [w * t for w, t in zip(cfg.scale_weights, raw, strict=True)]
    teacher_terms: list[Tensor] = []
    if teacher_active(cfg, epoch):
        teacher = _need_teacher(batch, cfg)
        fn, kwargs = ssi_loss(cfg.ssi), _ssi_kwargs(cfg)
        teacher_terms = [w * fn(p, teacher, teacher > 0, space=space, **kwargs) if w else
                         torch.zeros((), device=p.device)
                         for p, w in zip(preds, _teacher_weights(cfg), strict=True)]
        total = total + torch.stack(teacher_terms).sum()
    return LossTerms(total, _terms(gt, teacher_terms))


def stage2_loss(preds: Sequence[Tensor], batch: Batch, cfg: Stage2LossConfig,
                space: str = "disparity") -> LossTerms:
    """The objective ``cfg.objective`` of BP-Net's six outputs (coarsest first) on ``batch``
    (GT ``target``, teacher map in the recipe's form, ``epoch``); ``space`` is the teacher's
    space for ``ours``. Computed in float32."""
    preds = [p.float() for p in preds]
    if cfg.objective == "released":
        terms = _released(preds, batch, cfg, batch.epoch)
    elif cfg.objective == "dmdpp":
        terms = _dmdpp(preds, batch, cfg, batch.epoch)
    else:
        terms = _ours(preds, batch, cfg, batch.epoch, space)
    return LossTerms(terms.total, terms.scalars | {"total": terms.total.detach()})
