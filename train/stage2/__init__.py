"""Stage 2: fine-tuning on real data (``dmd3c finetune --recipe NAME``), the same shape as stage 1.

``config`` (typed settings, the recipes dmd3c / dmd3c++ / dmd3c-ours = ``configs/finetune-*.yaml``,
checks), ``loss`` (each recipe's objective, wired to :mod:`train.losses`), ``recipe`` (KITTI and
NYUv2 recipes: their datasets and teacher maps; what the shared engine runs), ``validation``
(devkit / NYUv2 metrics during training, ``best.pt`` by RMSE), ``cli``.
"""
