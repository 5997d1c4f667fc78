"""Stage-2 configuration: typed settings, the three named recipes, and their checks.

A *recipe* is a complete :class:`FinetuneConfig` (``dmd3c finetune --recipe NAME``):

* ``dmd3c`` (the default, = the dataclass defaults): the released DMD3C stage-2 code
  (``Sharpiless/DMD3C``), value for value; ``data.flip_teacher=false`` reproduces its
  teacher-flip bug;
* ``dmd3c++``: DMD3C++'s loss and augmentation (``Sharpiless/DMD3Cpp``) on our BP-Net, with
  our LiDAR-aligned metric teacher maps in place of its in-network Depth Anything 3;
* ``dmd3c-ours``: this project's earlier recipe (BP-Net's KITTI schedule + an SSI term of our
  own on the final output).

Each is written out in ``configs/finetune-<name>.yaml`` (a test keeps file and preset equal).
Field docstrings say where each value of the released recipes comes from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from data_schemas.errors import ConfigError
from data_schemas.geometry import parse_depth_space
from train.datasets.augment import AugmentConfig, check_augment
from train.datasets.kitti.dataset import DEFAULT_CROP, DEFAULT_TOP_MIN
from train.datasets.kitti.layout import parse_split
from train.datasets.kitti.teacher import parse_teacher_form
from train.engine import EngineConfig, OptimConfig, ScheduleConfig, load_run_config
from train.engine.checks import Checks, check_crop, world_size_from_env
from train.losses.dmdpp import LAMBDA_SSI, SSI_SCALE_WEIGHTS
from train.losses.pixel import SCALE_WEIGHTS, parse_loss_kind
from train.losses.released import RELEASED_SCALE_WEIGHTS
from train.losses.ssi import SSI_LOSS_NAMES
from train.model.checkpoint import WEIGHTS, read_checkpoint

OBJECTIVES: tuple[str, ...] = ("released", "dmdpp", "ours")
DEFAULT_RECIPE = "dmd3c"
LEGACY_RECIPE = "dmd3c-ours"
"""The recipe of a saved run config without a ``recipe`` key (written before recipes)."""
NUM_OUTPUTS = 6
"""BP-Net's outputs, coarsest first."""


def _released_augment() -> AugmentConfig:
    return AugmentConfig(flip_prob=0.5, jitter_std=0.1, jitter_on="frame")


@dataclass(frozen=True)
class KittiDataConfig:
    """KITTI frames and teacher maps for training, and validation (defaults: the release)."""

    split: str = "train"
    """Training split: train, val or raw (maps inside raw/<date>/<drive>/proj_depth)."""
    crop: tuple[int, int] = DEFAULT_CROP
    """Training crop [h, w] (multiples of 32) at a random top offset >= top_min and a random
    left offset (release: ``data.height`` 256, ``width`` 1216; DMD3C++: 352 x 1216)."""
    top_min: int = DEFAULT_TOP_MIN
    """Lowest top offset of the training crop (release ``datasets/kitti.py`` ``tp_min=50``,
    skipping LiDAR-free rows; DMD3C++: 0)."""
    augment: AugmentConfig = field(default_factory=_released_augment)
    """Flip, colour and LiDAR augmentation (release ``augs.Jitter`` + ``augs.Flip``)."""
    teacher_form: str = "released"
    """How teacher maps are read: released (as the release's 8-bit PNG / 255: per-image
    min-max over the whole frame before the crop), raw (stored values) or aligned (LiDAR-
    aligned metric depth, DMD3C++)."""
    flip_teacher: bool = True
    """Flip the teacher map with the image. The release flips rgb, LiDAR, GT and K but not the
    teacher (``augs.Flip``): false reproduces that bug."""
    val_split: str = "selval"
    """Validation split (selval, val, raw) when present under the KITTI root; '' = none
    (release: ``testset`` mode selval)."""
    val_max_frames: int = 0
    """Validate on at most this many frames (0 = all; release: all 1,000 selval frames)."""
    val_crop: tuple[int, int] | None = DEFAULT_CROP
    """Validate on the bottom-centre [h, w] window; null = whole frames (release: the bottom
    256 x 1216 rows of the 352-row selval frames, its data height; DMD3C++: whole frames)."""
    num_workers: int = 4
    """DataLoader worker processes per rank (0 = read in the training process)."""


@dataclass(frozen=True)
class Stage2LossConfig:
    """The stage-2 objective: a GT term plus a teacher term (defaults: the release)."""

    objective: str = "released"
    """released (DMD3C: MSMSE over all pixels + RPNL to 1/(t + 0.5) on all six outputs,
    ``train.losses.released``), dmdpp (DMD3C++: MSE over valid GT pixels + scale-and-shift-
    invariant MSE + gradient to the teacher, ``train.losses.dmdpp``) or ours (a multi-scale
    supervised loss + an SSI variant of ``train.losses.ssi``)."""
    scale_weights: tuple[float, ...] = RELEASED_SCALE_WEIGHTS
    """GT-term weight of each output, coarsest first (release ``criteria.MSMSE`` ``deltas``,
    2^-10 ... 1)."""
    teacher_scale_weights: tuple[float, ...] = RELEASED_SCALE_WEIGHTS
    """Teacher-term weight of each output (release ``rpnloss`` ``deltas``; DMD3C++
    ``deltas_ssil``, 0.05 at full resolution; ours: the final output only)."""
    teacher_weight: float = 1.0
    """Overall teacher-term weight (release: 1, ``loss += disp_loss``; DMD3C++
    ``lambda_metric`` 0.2); 0 = GT only, no teacher maps needed."""
    teacher_off_from_epoch: int | None = None
    """No teacher term from this 0-based epoch on; null = never. DMD3C++'s ``train_distill``
    asks for 25 (``return_dis``) but its ``MSMSE_ssil`` ignores the request: null as released,
    25 as intended."""
    supervised: str = "l2"
    """ours: "l2" (BP-Net's multi-scale MSE on valid GT pixels), "l1" or "l1+l2"."""
    ssi: str = "paper"
    """ours: the SSI variant, paper, rpnl or patch (``train.losses.ssi``)."""
    teacher_space: str = "auto"
    """ours: space of the teacher maps: auto (from the store / form), disparity, depth."""
    grad_weight: float = 0.5
    """ours: gradient-matching weight inside paper/patch (MiDaS: 0.5)."""
    patch_sizes: tuple[int, ...] = (32, 64)
    """ours: patch sizes of the patch variant (stride = half a patch)."""
    rpnl_crops: int = 32
    """ours: random crops per image of the rpnl variant (release: 32)."""
    rpnl_min_frac: float = 0.125
    """ours: smallest crop side of rpnl, as a fraction of the image side."""
    rpnl_max_frac: float = 0.5
    """ours: largest crop side of rpnl, as a fraction of the image side."""

    @property
    def uses_teacher(self) -> bool:
        return self.teacher_weight > 0 and any(w != 0 for w in self.teacher_scale_weights)


@dataclass(frozen=True)
class Stage2ModelConfig:
    """BP-Net construction and initial weights."""

    drop_path: float = 0.1
    """Stochastic depth rate of BP-Net's blocks (release ``Pre_MF_Post`` default 0.1)."""
    init: str = ""
    """Stage-1 (or released) checkpoint to start from (set by --init; release ``++chpt``)."""
    init_weights: str = "auto"
    """Which weights of --init: auto (EMA when the file has them), ema or net."""


def _released_optim() -> OptimConfig:
    return OptimConfig(lr=5e-4, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8, grad_clip=0.1,
                       no_decay_1d=True)


def _released_schedule() -> ScheduleConfig:
    return ScheduleConfig(pct_start=0.1, div_factor=40.0, final_div_factor=0.1, anneal="cos",
                          cycle_momentum=True, base_momentum=0.85, max_momentum=0.90,
                          noise_pct=0.1)


def _released_engine() -> EngineConfig:
    return EngineConfig(steps=0, epochs=30, batch_size=8, precision="fp32", ema_decay=0.9999,
                        sync_bn=True, checkpoint_every=5000, val_every=1000, val_from_epoch=25,
                        val_each_epoch=True)


@dataclass(frozen=True)
class FinetuneConfig:
    """Stage-2 fine-tuning on KITTI (defaults: the ``dmd3c`` recipe, the released code).

    optim: AdamW lr 5e-4 (the release README's fine-tuning command; its ``config.yaml`` and
    ``run.sh`` say 1e-3, for BP-Net from scratch), weight decay 0.05 (``configs/optim``) off
    for 1-D parameters (``utils.config_param``), gradient clip 0.1 (``configs/net/PMP``).
    schedule: ``NoiseOneCycleCosMo`` per iteration, momentum 0.85-0.90 (``max_momentum=0.90``
    in the command). engine: 30 epochs, batch 8 (2 per GPU x 4 GPUs) with SyncBN (``net.sbn``),
    fp32, EMA 0.9999; validation of the EMA model after every epoch and every 1,000
    iterations from epoch 25 (``test_epoch``, ``test_iter``), the best kept (``best.pt``).
    """

    recipe: str = DEFAULT_RECIPE
    """The recipe these values started from (set by --recipe): dmd3c, dmd3c++, dmd3c-ours."""
    kitti: str = ""
    """KITTI root (set by --kitti)."""
    nyu: str = ""
    """NYUv2 root with train/ and val/ HDF5 files (set by --nyu): fine-tune on NYUv2 instead
    of KITTI (GT loss only: loss.teacher_weight=0; the 228x304 crop padded to 256x320, flips
    only: the crop, colour and LiDAR settings of data do not apply)."""
    teacher_maps: str = ""
    """Teacher maps of the KITTI images (set by --teacher-maps): a `dmd3c teach` store, or a
    folder with the released raw/<date>/<drive>/image_0x/disp/*.png maps (the KITTI root)."""
    data: KittiDataConfig = field(default_factory=KittiDataConfig)
    loss: Stage2LossConfig = field(default_factory=Stage2LossConfig)
    model: Stage2ModelConfig = field(default_factory=Stage2ModelConfig)
    optim: OptimConfig = field(default_factory=_released_optim)
    schedule: ScheduleConfig = field(default_factory=_released_schedule)
    engine: EngineConfig = field(default_factory=_released_engine)


# -- the recipes ----------------------------------------------------------------------------
def dmd3c_recipe() -> FinetuneConfig:
    """The released DMD3C stage 2 (the dataclass defaults)."""
    return FinetuneConfig()


def dmdpp_recipe() -> FinetuneConfig:
    """DMD3C++ (``Sharpiless/DMD3Cpp``): ``train.sh`` (lr 1e-3, 8 GPUs x 1, momentum 0.90,
    30 epochs, SyncBN), ``configs/data/KITTI.yaml`` (height 352), ``datasets/kitti.py``
    (``tp_min=0``, LiDAR dropout and noise) + ``augs.py`` (grey, brightness/contrast, gamma),
    ``criteria.MSMSE_ssil`` (whose teacher term stays on in every epoch); the teacher: our
    LiDAR-aligned metric maps."""
    base = FinetuneConfig()
    augment = replace(base.data.augment, grey_prob=0.2, brightness_contrast_prob=0.3,
                      brightness=0.2, contrast=0.2, gamma_prob=0.3, gamma_range=(0.8, 1.2),
                      lidar_dropout_prob=0.3, lidar_dropout_max=0.3, lidar_noise_prob=0.35,
                      lidar_noise_std_m=0.1, lidar_noise_max_m=200.0)
    data = replace(base.data, crop=(352, 1216), top_min=0, augment=augment,
                   teacher_form="aligned", val_crop=None)
    loss = replace(base.loss, objective="dmdpp", teacher_scale_weights=SSI_SCALE_WEIGHTS,
                   teacher_weight=LAMBDA_SSI, teacher_off_from_epoch=None)
    return replace(base, recipe="dmd3c++", data=data, loss=loss,
                   optim=replace(base.optim, lr=1e-3))


def ours_recipe() -> FinetuneConfig:
    """This project's earlier stage 2: BP-Net's KITTI schedule (lr 1e-3, momentum up to 0.95,
    weight decay on every parameter), batch 16 in bf16 for 160k steps, 0.1 x our ``paper``
    SSI term on the final output to the stored teacher map, validation on 100 whole selval
    frames every 5k steps."""
    base = FinetuneConfig()
    data = replace(base.data, augment=AugmentConfig(), teacher_form="raw", val_max_frames=100,
                   val_crop=None)
    loss = replace(base.loss, objective="ours", scale_weights=SCALE_WEIGHTS,
                   teacher_scale_weights=(0.0, 0.0, 0.0, 0.0, 0.0, 1.0), teacher_weight=0.1)
    engine = EngineConfig(steps=160_000, epochs=0, batch_size=16, precision="bf16",
                          ema_decay=0.9999, sync_bn=False, checkpoint_every=5000,
                          val_every=5000)
    return replace(base, recipe="dmd3c-ours", data=data, loss=loss,
                   optim=replace(base.optim, lr=1e-3, no_decay_1d=False),
                   schedule=replace(base.schedule, max_momentum=0.95), engine=engine)


RECIPES: dict[str, Callable[[], FinetuneConfig]] = {
    "dmd3c": dmd3c_recipe, "dmd3c++": dmdpp_recipe, "dmd3c-ours": ours_recipe}
"""Recipe name -> its complete config."""


def recipe_preset(name: str) -> FinetuneConfig:
    """The config of recipe ``name``; a ConfigError lists the known ones."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]()


# -- checks ---------------------------------------------------------------------------------
def _check_ours(cfg: FinetuneConfig) -> None:
    """The ``ours`` settings (checked whatever the objective: a typo is caught early)."""
    loss = cfg.loss
    parse_loss_kind(loss.supervised)
    if loss.ssi not in SSI_LOSS_NAMES:
        raise ConfigError(f"loss.ssi must be one of {', '.join(SSI_LOSS_NAMES)}; got "
                          f"{loss.ssi!r}")
    if loss.teacher_space != "auto":
        parse_depth_space(loss.teacher_space)
    patches = loss.objective == "ours" and loss.ssi == "patch"
    too_big = [s for s in loss.patch_sizes if s > min(cfg.data.crop)] if patches else []
    if too_big:
        raise ConfigError(f"loss.patch_sizes {too_big} do not fit the training crop "
                          f"{cfg.data.crop[0]}x{cfg.data.crop[1]}")
    if not 0 < loss.rpnl_min_frac <= loss.rpnl_max_frac <= 1:
        raise ConfigError(f"loss.rpnl_min_frac and loss.rpnl_max_frac must satisfy 0 < min <= "
                          f"max <= 1; got {loss.rpnl_min_frac}, {loss.rpnl_max_frac}")


def _check_loss(cfg: FinetuneConfig) -> None:
    loss = cfg.loss
    if loss.objective not in OBJECTIVES:
        raise ConfigError(f"loss.objective must be one of {', '.join(OBJECTIVES)}; got "
                          f"{loss.objective!r}")
    for name in ("scale_weights", "teacher_scale_weights"):
        if len(getattr(loss, name)) != NUM_OUTPUTS:
            raise ConfigError(f"loss.{name} needs {NUM_OUTPUTS} weights (BP-Net's outputs, "
                              f"coarsest first); got {list(getattr(loss, name))}")
    if loss.teacher_weight < 0:
        raise ConfigError(f"loss.teacher_weight must be >= 0, got {loss.teacher_weight}")
    _check_ours(cfg)
    if cfg.nyu and loss.uses_teacher:
        raise ConfigError("NYUv2 has no teacher maps (`dmd3c teach` reads KITTI): pass "
                          "loss.teacher_weight=0 to fine-tune on NYUv2")


def check_config(cfg: FinetuneConfig, checks: Checks | None = None) -> None:
    """One-line ConfigErrors for invalid or inconsistent settings (quoting the overrides
    ``checks`` was made from)."""
    checks = checks or Checks()
    recipe_preset(cfg.recipe)
    parse_split(cfg.data.split)
    parse_teacher_form(cfg.data.teacher_form)
    check_augment(cfg.data.augment)
    _check_loss(cfg)
    if cfg.model.init_weights not in WEIGHTS:
        raise ConfigError(f"model.init_weights must be one of {', '.join(WEIGHTS)}; got "
                          f"{cfg.model.init_weights!r}")
    check_crop(cfg.data.crop, checks, "data.crop", cfg.engine.batch_size // world_size_from_env())
    if cfg.data.val_crop:
        check_crop(cfg.data.val_crop, checks, "data.val_crop")  # eval mode: any multiple of 32
    for name in ("top_min", "val_max_frames", "num_workers"):
        checks.integer(f"data.{name}", getattr(cfg.data, name), 0)


def check_inputs(cfg: FinetuneConfig) -> None:
    """The paths a run needs (``--print-config`` does without them): a dataset, and teacher
    maps when the objective has a teacher term."""
    if not cfg.kitti and not cfg.nyu:
        raise ConfigError("--kitti ROOT (or --nyu ROOT) is required")
    if cfg.kitti and cfg.loss.uses_teacher and not cfg.teacher_maps:
        raise ConfigError(f"recipe {cfg.recipe} trains against teacher maps: pass --teacher-maps "
                          f"(a `dmd3c teach` store or a folder of released disp/*.png maps), or "
                          f"loss.teacher_weight=0 to fine-tune on the GT alone")


# -- resolution -----------------------------------------------------------------------------
def _recipe_key(node: DictConfig | ListConfig) -> str | None:
    """The top-level ``recipe`` of a loaded YAML, if any."""
    value = node.get("recipe") if isinstance(node, DictConfig) else None
    return str(value) if value else None


def _named_recipes(option: str | None, config_file: Path | None,
                   overrides: Sequence[str]) -> dict[str, str]:
    """Where the user named a recipe: {"--recipe": name, "--config": name, "recipe=": name}."""
    named = {"--recipe": option} if option else {}
    if config_file is not None and Path(config_file).is_file():
        value = _recipe_key(OmegaConf.load(config_file))
        if value:
            named["--config"] = value
    for item in overrides:
        if item.startswith("recipe="):
            named["recipe="] = item.split("=", 1)[1]
    return named


def _saved_recipe(run_dir: Path) -> str | None:
    """The recipe of the run saved in ``run_dir/last.pt`` (None: no saved run)."""
    path = run_dir / "last.pt"
    if not path.is_file():
        return None
    saved = OmegaConf.create(str(read_checkpoint(path, mmap=True).get("config") or "{}"))
    return _recipe_key(saved) or LEGACY_RECIPE


def choose_recipe(option: str | None, run_dir: Path, config_file: Path | None,
                  overrides: Sequence[str], resume: bool) -> str:
    """The recipe to start from: the one named (by --recipe, the --config file's ``recipe``
    key or a ``recipe=`` override; they must agree), the resumed run's, or ``dmd3c``."""
    named = _named_recipes(option, config_file, overrides)
    if len(set(named.values())) > 1:
        shown = ", ".join(f"{where} {name}" for where, name in named.items())
        raise ConfigError(f"conflicting recipes ({shown}); name one")
    saved = _saved_recipe(run_dir) if resume else None
    if saved is not None and named and set(named.values()) != {saved}:
        raise ConfigError(f"{run_dir} holds a {saved} run; resume it without naming another "
                          f"recipe (got {next(iter(named.values()))})")
    return saved or next(iter(named.values()), DEFAULT_RECIPE)


def resolve_config(kitti: str, teacher_maps: str, init: str, run_dir: Path,
                   config_file: Path | None, overrides: Sequence[str],
                   resume: bool, nyu: str = "", recipe: str | None = None) -> FinetuneConfig:
    """The recipe's config (see :func:`choose_recipe`) <- (the run's saved config when
    resuming) <- ``config_file`` <- overrides <- the path options (``--kitti`` etc.; empty =
    not given)."""
    name = choose_recipe(recipe, run_dir, config_file, overrides, resume)
    cfg = load_run_config(FinetuneConfig, run_dir, config_file, overrides, resume,
                          preset=recipe_preset(name))
    cfg = replace(cfg, recipe=name, kitti=kitti or cfg.kitti, nyu=nyu or cfg.nyu,
                  teacher_maps=teacher_maps or cfg.teacher_maps,
                  model=replace(cfg.model, init=init or cfg.model.init))
    check_config(cfg, Checks(overrides))
    return cfg
