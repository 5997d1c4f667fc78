"""``dmd3c finetune``: the stage-2 command (registered by :mod:`train.cli`).

``--recipe`` picks the starting config (``dmd3c``, the released code, by default; see
:mod:`train.stage2.config`). The path options are shorthands for the config keys ``kitti``,
``teacher_maps``, ``nyu`` and ``model.init``; every other setting comes from the recipe
through ``--config`` and ``KEY=VALUE`` overrides, as for ``dmd3c pretrain``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def finetune_command(
    recipe: Annotated[str | None, typer.Option(
        "--recipe", help="Starting config: dmd3c (the released DMD3C code, the default), "
                         "dmd3c++ (DMD3C++'s loss and augmentation) or dmd3c-ours (our "
                         "earlier recipe). README: Reproduce DMD3C.",
        show_default=False)] = None,
    kitti: Annotated[str, typer.Option(
        "--kitti", help="KITTI root: data_depth_annotated/, data_depth_velodyne/, raw/, "
                        "val_selection_cropped/ (README: Reproduce DMD3C on KITTI).",
        show_default=False)] = "",
    teacher_maps: Annotated[str, typer.Option(
        "--teacher-maps", help="Teacher maps of the KITTI images: a `dmd3c teach` store, or "
                               "a folder (the KITTI root) with the released "
                               "raw/<date>/<drive>/image_0x/disp/*.png maps.",
        show_default=False)] = "",
    nyu: Annotated[str, typer.Option(
        "--nyu", help="Fine-tune on NYUv2 instead: root with train/ and val/ HDF5 files "
                      "(with loss.teacher_weight=0).", show_default=False)] = "",
    init: Annotated[str, typer.Option(
        "--init", help="Stage-1 checkpoint (our last.pt) or a released BP-Net/DMD3C "
                       "{'net': ...} file to start from.", show_default=False)] = "",
    out: Annotated[Path, typer.Option(
        "--out", help="Run directory: config.yaml, last.pt, best.pt (best validation "
                      "RMSE), tb/ (TensorBoard).")] = Path("runs/finetune"),
    overrides: Annotated[list[str] | None, typer.Argument(
        metavar="[KEY=VALUE]...",
        help="Config overrides (OmegaConf dotlist), e.g. engine.steps=100 "
             "data.flip_teacher=false data.crop=[256,512]. See --print-config for every key.",
        show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="YAML merged over the recipe (e.g. an edited "
                         "configs/finetune-dmd3c.yaml).",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --out from its last.pt.")] = False,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the resolved config as YAML and exit.")] = False,
) -> None:
    """Stage-2 fine-tuning on KITTI: a GT term + a teacher term, as the chosen recipe says
    (or on NYUv2 with --nyu).

    Runs as one process on CPU or one GPU, or under `torchrun --nproc_per_node=N` (DDP).
    """
    from train.engine import to_yaml
    from train.stage2.config import resolve_config
    from train.stage2.recipe import finetune

    cfg = resolve_config(kitti, teacher_maps, init, out, config, overrides or [], resume, nyu,
                         recipe)
    if print_config:
        typer.echo(to_yaml(cfg), nl=False)
        return
    state = finetune(out, cfg, resume=resume)
    typer.echo(f"dmd3c finetune: {state.step} steps done; checkpoint {out / 'last.pt'}")
