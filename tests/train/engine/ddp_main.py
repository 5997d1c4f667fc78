"""torchrun entry of test_ddp: train TinyNet for a few steps, save this rank's weights and keys.

Usage: torchrun --nproc_per_node=2 ddp_main.py STORE OUT_DIR
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
from tiny import TinyNet

from train.datasets import StoreIndex
from train.engine import Trainer, init_distributed, shutdown
from train.engine.config import load_structured
from train.stage1.config import PretrainConfig
from train.stage1.recipe import build_recipe


def main(store: str, out: Path) -> None:
    cfg = load_structured(PretrainConfig, [], [
        "engine.steps=2", "engine.batch_size=2", "data.crop=[32,64]", "data.num_workers=0",
        "engine.device=cpu", "engine.progress=false", "engine.val_every=0",
        "engine.checkpoint_every=0", "engine.ema_decay=0.9"])
    ctx = init_distributed("cpu")
    torch.set_num_threads(1)
    recipe = build_recipe(cfg, StoreIndex.open(store), ctx, TinyNet)
    seen: list[str] = []

    def loss_fn(model, batch):
        seen.extend(batch.keys)
        return recipe.loss_fn(model, batch)

    trainer = Trainer(replace(recipe, loss_fn=loss_fn), cfg.engine, cfg.optim, cfg.schedule,
                      out, ctx)
    state = trainer.fit()
    torch.save(trainer.model.state_dict(), out / f"rank{ctx.rank}.pt")
    (out / f"rank{ctx.rank}.json").write_text(json.dumps({"keys": seen, "losses": state.losses,
                                                          "world": ctx.world_size}))
    shutdown(ctx)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
