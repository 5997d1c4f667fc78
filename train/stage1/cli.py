"""``dmd3c pretrain``: the stage-1 command (registered by :mod:`train.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def pretrain_command(
    store: Annotated[str, typer.Option(
        "--store", help="Sample store (path or fsspec URL) written by `dmd3c generate`.",
        show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", help="Run directory: config.yaml, last.pt, tb/ (TensorBoard), train_log.jsonl.",
        show_default=False)],
    overrides: Annotated[list[str] | None, typer.Argument(
        metavar="[KEY=VALUE]...",
        help="Config overrides (OmegaConf dotlist), e.g. engine.steps=100 "
             "engine.batch_size=2 data.crop=[256,512] data.num_workers=0. "
             "See --print-config for every key.", show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="YAML config merged over the defaults (e.g. configs/pretrain.yaml).",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --out from its last.pt, bit-exactly.")] = False,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the resolved config as YAML and exit.")] = False,
) -> None:
    """Stage-1 distillation pre-training of BP-Net on a sample store (DMD3C recipe).

    Runs as one process on CPU or one GPU, or under `torchrun --nproc_per_node=N` (DDP).
    """
    from train.engine import to_yaml
    from train.stage1.recipe import pretrain, resolve_config

    cfg = resolve_config(store, out, config, overrides or [], resume)
    if print_config:
        typer.echo(to_yaml(cfg), nl=False)
        return
    state = pretrain(store, out, cfg, resume=resume)
    typer.echo(f"dmd3c pretrain: {state.step} steps done; checkpoint {out / 'last.pt'}")
