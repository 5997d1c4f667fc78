"""BP-Net in pure PyTorch, state-dict compatible with the released checkpoints.

``bpnet`` (the network), ``layers`` and ``pmp`` (its blocks), ``ops`` (pure-PyTorch
replacements of the released CUDA kernels), ``inputs`` (RGB normalisation and input checks),
``checkpoint`` (the one reader of released and our checkpoint files).
"""

from train.model.bpnet import BPNet
from train.model.checkpoint import (
    Checkpoint,
    load_checkpoint,
    pick_weights,
    read_checkpoint,
    save_checkpoint,
)
from train.model.inputs import RGB_MEAN, RGB_STD, check_inputs, normalize_rgb
from train.model.ops import KnnResult, local_conv2d, sparse_knn

__all__ = [
    "BPNet",
    "Checkpoint",
    "KnnResult",
    "RGB_MEAN",
    "RGB_STD",
    "check_inputs",
    "load_checkpoint",
    "local_conv2d",
    "normalize_rgb",
    "pick_weights",
    "read_checkpoint",
    "save_checkpoint",
    "sparse_knn",
]
