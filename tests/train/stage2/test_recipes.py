"""The three stage-2 recipes: their documented values, their YAML mirrors, how a recipe is
chosen, and that each objective is wired to its formula (no training here)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from data_schemas.errors import ConfigError
from tests.train.cli_helpers import run_cli
from train.datasets.sample import Batch
from train.engine import to_yaml
from train.engine.checkpoint import make_payload
from train.engine.param_groups import param_groups
from train.losses.dmdpp import dmdpp_stage2_loss
from train.losses.pixel import multiscale_loss
from train.losses.released import released_gt_term, released_stage2_loss
from train.losses.ssi import ssi_loss
from train.model import BPNet
from train.stage2.config import (
    RECIPES,
    FinetuneConfig,
    dmd3c_recipe,
    dmdpp_recipe,
    ours_recipe,
    resolve_config,
)
from train.stage2.loss import stage2_loss

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
D = (2**-10, 2**-8, 2**-6, 2**-4, 2**-2, 1.0)

# Every value as documented in README "Reproduce DMD3C" (sources there and in the YAMLs).
DOCUMENTED = {
    "dmd3c": {
        "optim.lr": 5e-4, "optim.weight_decay": 0.05, "optim.no_decay_1d": True,
        "optim.grad_clip": 0.1, "schedule.base_momentum": 0.85, "schedule.max_momentum": 0.90,
        "schedule.div_factor": 40.0, "schedule.final_div_factor": 0.1, "schedule.pct_start": 0.1,
        "schedule.noise_pct": 0.1, "engine.batch_size": 8, "engine.precision": "fp32",
        "engine.sync_bn": True, "engine.epochs": 30, "engine.steps": 0,
        "engine.ema_decay": 0.9999, "engine.val_every": 1000, "engine.val_from_epoch": 25,
        "engine.val_each_epoch": True, "loss.objective": "released", "loss.scale_weights": D,
        "loss.teacher_scale_weights": D, "loss.teacher_weight": 1.0,
        "loss.teacher_off_from_epoch": None, "data.crop": (256, 1216), "data.top_min": 50,
        "data.teacher_form": "released", "data.flip_teacher": True,
        "data.augment.jitter_on": "frame", "data.augment.jitter_std": 0.1,
        "data.augment.flip_prob": 0.5, "data.augment.grey_prob": 0.0,
        "data.augment.lidar_noise_prob": 0.0, "data.val_split": "selval",
        "data.val_max_frames": 0, "data.val_crop": (256, 1216),
    },
    "dmd3c++": {
        "optim.lr": 1e-3, "optim.weight_decay": 0.05, "optim.no_decay_1d": True,
        "optim.grad_clip": 0.1, "schedule.base_momentum": 0.85, "schedule.max_momentum": 0.90,
        "engine.batch_size": 8, "engine.precision": "fp32", "engine.sync_bn": True,
        "engine.epochs": 30, "engine.val_every": 1000, "engine.val_from_epoch": 25,
        "engine.val_each_epoch": True, "loss.objective": "dmdpp", "loss.scale_weights": D,
        "loss.teacher_scale_weights": (*D[:5], 0.05), "loss.teacher_weight": 0.2,
        "loss.teacher_off_from_epoch": None, "data.crop": (352, 1216), "data.top_min": 0,
        "data.teacher_form": "aligned", "data.flip_teacher": True,
        "data.augment.jitter_on": "frame", "data.augment.grey_prob": 0.2,
        "data.augment.brightness_contrast_prob": 0.3, "data.augment.brightness": 0.2,
        "data.augment.contrast": 0.2, "data.augment.gamma_prob": 0.3,
        "data.augment.gamma_range": (0.8, 1.2), "data.augment.lidar_dropout_prob": 0.3,
        "data.augment.lidar_dropout_max": 0.3, "data.augment.lidar_noise_prob": 0.35,
        "data.augment.lidar_noise_std_m": 0.1, "data.val_crop": None,
    },
    "dmd3c-ours": {
        "optim.lr": 1e-3, "optim.weight_decay": 0.05, "optim.no_decay_1d": False,
        "schedule.max_momentum": 0.95, "engine.batch_size": 16, "engine.precision": "bf16",
        "engine.sync_bn": False, "engine.steps": 160_000, "engine.epochs": 0,
        "engine.val_every": 5000, "engine.val_each_epoch": False, "loss.objective": "ours",
        "loss.scale_weights": D, "loss.teacher_scale_weights": (0, 0, 0, 0, 0, 1.0),
        "loss.teacher_weight": 0.1, "loss.ssi": "paper", "loss.supervised": "l2",
        "data.teacher_form": "raw", "data.augment.jitter_on": "crop", "data.val_max_frames": 100,
        "data.val_crop": None,
    },
}


def _get(cfg: object, dotted: str) -> object:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("name", list(RECIPES))
def test_each_recipe_resolves_to_its_documented_values(name: str, tmp_path: Path) -> None:
    cfg = resolve_config("kitti", "maps", "", tmp_path / "r", None, [], False, recipe=name)
    assert cfg.recipe == name
    for key, value in DOCUMENTED[name].items():
        assert _get(cfg, key) == value, key


@pytest.mark.parametrize("name", list(RECIPES))
def test_configs_yaml_equals_the_preset(name: str) -> None:
    documented = yaml.safe_load((CONFIGS / f"finetune-{name}.yaml").read_text())
    assert documented == yaml.safe_load(to_yaml(RECIPES[name]()))


def test_dmd3c_is_the_default() -> None:
    assert dmd3c_recipe() == FinetuneConfig()


@pytest.mark.parametrize(("name", "counts"), [("dmd3c", (561, 298)), ("dmd3c++", (561, 298)),
                                              ("dmd3c-ours", (0, 859))])
def test_weight_decay_groups_of_each_recipe(name: str, counts: tuple[int, int]) -> None:
    optim = RECIPES[name]().optim
    with torch.device("meta"):
        groups = param_groups(BPNet(), optim.weight_decay, optim.no_decay_1d)
    by_decay = {g["weight_decay"]: len(g["params"]) for g in groups}
    assert (by_decay.get(0.0, 0), by_decay.get(0.05, 0)) == counts


def test_print_config_shows_the_released_values(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["finetune", "--recipe", "dmd3c", "--print-config"], capsys)
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown == yaml.safe_load(to_yaml(dmd3c_recipe()))
    assert shown["optim"]["lr"] == 5e-4 and shown["engine"]["batch_size"] == 8
    for line in ("objective: released", "teacher_form: released", "flip_teacher: true",
                 "no_decay_1d: true", "max_momentum: 0.9", "precision: fp32", "epochs: 30",
                 "val_from_epoch: 25", "val_every: 1000", "sync_bn: true"):
        assert line in out, line


def test_unknown_recipe_lists_the_known_ones(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["finetune", "--recipe", "dmd3", "--kitti", tmp_path, "--out",
                            tmp_path / "r"], capsys)
    assert code == 2
    assert err == ("dmd3c: error: unknown recipe 'dmd3'; choose one of dmd3c, dmd3c++, "
                   "dmd3c-ours\n")


def test_recipe_from_config_file_and_conflicts(tmp_path: Path) -> None:
    edited = tmp_path / "mine.yaml"
    edited.write_text("recipe: dmd3c++\noptim:\n  lr: 0.002\n")
    cfg = resolve_config("k", "t", "", tmp_path / "r", edited, [], False)
    assert cfg.recipe == "dmd3c++" and cfg.loss.objective == "dmdpp" and cfg.optim.lr == 0.002
    with pytest.raises(ConfigError, match="conflicting recipes \\(--recipe dmd3c, --config "
                                          "dmd3c\\+\\+\\)"):
        resolve_config("k", "t", "", tmp_path / "r", edited, [], False, recipe="dmd3c")
    cfg = resolve_config("k", "t", "", tmp_path / "r", None, ["recipe=dmd3c-ours"], False)
    assert cfg.loss.objective == "ours"


def _saved_run(run: Path, config_text: str) -> None:
    run.mkdir(parents=True)
    payload = make_payload(net={}, step=3, epoch=0, optimizer={}, scaler={}, sampler={},
                           rng={}, config=config_text)  # a resume's entries, its saved config
    torch.save(payload, run / "last.pt")


def test_resume_takes_the_saved_recipe(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _saved_run(run, to_yaml(replace(dmdpp_recipe(), kitti="k", teacher_maps="t")))
    cfg = resolve_config("", "", "", run, None, ["engine.steps=7"], True)
    assert cfg.recipe == "dmd3c++" and cfg.loss.objective == "dmdpp" and cfg.engine.steps == 7
    with pytest.raises(ConfigError, match="holds a dmd3c\\+\\+ run; resume it without naming"):
        resolve_config("", "", "", run, None, [], True, recipe="dmd3c")
    legacy = tmp_path / "legacy"  # saved before recipes existed: our earlier recipe
    text = yaml.safe_load(to_yaml(replace(ours_recipe(), kitti="k", teacher_maps="t")))
    del text["recipe"], text["loss"]["objective"]
    _saved_run(legacy, yaml.safe_dump(text))
    cfg = resolve_config("", "", "", legacy, None, [], True)
    assert cfg.recipe == "dmd3c-ours" and cfg.loss.objective == "ours"


# -- the objectives, wired -----------------------------------------------------------------------
def _batch(seed: int, epoch: int = 0) -> tuple[list[torch.Tensor], Batch]:
    g = torch.Generator().manual_seed(seed)
    shape = (2, 1, 32, 64)
    target = (5 + 30 * torch.rand(shape, generator=g)) * (torch.rand(shape, generator=g) > 0.8)
    teacher = torch.rand(shape, generator=g)
    preds = [(5 + 20 * torch.rand(shape, generator=g)).requires_grad_(True) for _ in range(6)]
    return preds, Batch(rgb=torch.zeros(2, 3, 32, 64), sparse=torch.zeros(shape), target=target,
                        K=torch.eye(3).expand(2, 3, 3), keys=("a", "b"), epoch=epoch,
                        teacher=teacher)


def test_dmd3c_objective_is_the_released_loss() -> None:
    preds, batch = _batch(0)
    torch.manual_seed(7)
    ours = stage2_loss(preds, batch, dmd3c_recipe().loss)
    torch.manual_seed(7)
    assert batch.teacher is not None
    released = released_stage2_loss(preds, batch.target, batch.teacher)
    assert torch.equal(ours.total, released.total)
    assert torch.equal(ours.scalars["teacher"], released.teacher.detach())
    assert set(ours.scalars) >= {f"gt_scale{i}" for i in range(6)} | {"gt", "teacher", "total"}


def test_dmd3cpp_objective_is_the_dmdpp_loss_in_every_epoch() -> None:
    for epoch in (0, 24, 25, 29):
        preds, batch = _batch(1, epoch)
        ours = stage2_loss(preds, batch, dmdpp_recipe().loss)
        assert batch.teacher is not None
        reference = dmdpp_stage2_loss(preds, batch.target, batch.teacher, 0)
        assert torch.equal(ours.total, reference.total), epoch  # on: MSMSE_ssil as released
    cfg = replace(dmdpp_recipe().loss, teacher_off_from_epoch=25)  # the intended switch
    preds, batch = _batch(1, 25)
    assert batch.teacher is not None
    assert torch.equal(stage2_loss(preds, batch, cfg).total,
                       dmdpp_stage2_loss(preds, batch.target, batch.teacher, 25).total)


def test_gt_only_draws_no_crops_and_needs_no_teacher() -> None:
    preds, batch = _batch(2)
    batch = replace(batch, teacher=None)
    cfg = replace(dmd3c_recipe().loss, teacher_weight=0.0)
    state = torch.get_rng_state()
    out = stage2_loss(preds, batch, cfg)
    assert torch.equal(torch.get_rng_state(), state)
    gt = torch.stack([w * released_gt_term(p, batch.target) for w, p in zip(D, preds,
                                                                            strict=True)]).sum()
    assert torch.equal(out.total, gt) and "teacher" not in out.scalars
    with pytest.raises(ValueError, match="carries no teacher maps"):
        stage2_loss(preds, batch, dmd3c_recipe().loss)


def test_ours_objective_is_the_multiscale_loss_plus_ssi() -> None:
    preds, batch = _batch(3)
    cfg = ours_recipe().loss
    out = stage2_loss(preds, batch, cfg, "disparity")
    gt, _ = multiscale_loss(preds, batch.target, batch.target > 0, D, "l2")
    assert batch.teacher is not None
    ssi = ssi_loss("paper")(preds[-1], batch.teacher, batch.teacher > 0, space="disparity",
                            grad_weight=0.5)
    torch.testing.assert_close(out.total, gt + 0.1 * ssi, rtol=1e-6, atol=0)
