"""The training room of dmd3c: BP-Net, its data, both training stages and inference.

Data flows through the folders in this order::

    datasets/   one Sample type, one augmentation module, one resumable sampler;
                store (stage 1: the generated Zarr sample store), kitti/ and nyu (stage 2)
    model/      BP-Net in pure PyTorch and its ops; the one checkpoint reader
    losses/     pixel (masked L1/L2, BP-Net's multi-scale sum), ssi (scale-and-shift-invariant),
                released / dmdpp (the authors' stage-2 objectives, as their code computes them)
    engine/     the loop shared by both stages: AMP, DDP, EMA, run-state checkpoints,
                schedule, config; it knows nothing about depth (a stage hands it a Recipe)
    stage1/     distillation pre-training: config + recipe (store stream, loss to the teacher)
    stage2/     fine-tuning on KITTI / NYUv2: config + recipe (+ validation), same shape
    infer/      predict, evaluate (KITTI devkit, NYUv2), export (benchmark PNGs), complete
    metrics.py  the KITTI devkit and NYUv2 metrics

``cli`` registers the commands: ``dmd3c pretrain``, ``finetune``, ``evaluate``, ``export``,
``complete``. ``train`` never imports ``pipeline``; both read and write through
``data_schemas``.
"""
