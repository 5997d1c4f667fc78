"""Stage 2: fine-tuning on real data (``dmd3c finetune``), the same shape as stage 1.

``config`` (typed defaults = ``configs/finetune.yaml``, checks), ``recipe`` (KITTI and
NYUv2 recipes: their datasets, the GT + SSI loss; what the shared engine runs),
``validation`` (devkit / NYUv2 metrics during training), ``cli``.
"""
