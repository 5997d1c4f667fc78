"""BP-Net in pure PyTorch, state-dict compatible with the released checkpoints."""

from train.model.bpnet import BPNet
from train.model.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from train.model.ema import EMA
from train.model.inputs import RGB_MEAN, RGB_STD, check_inputs, normalize_rgb
from train.model.ops import KnnResult, local_conv2d, sparse_knn

__all__ = [
    "BPNet",
    "Checkpoint",
    "CheckpointError",
    "EMA",
    "KnnResult",
    "RGB_MEAN",
    "RGB_STD",
    "check_inputs",
    "load_checkpoint",
    "local_conv2d",
    "normalize_rgb",
    "save_checkpoint",
    "sparse_knn",
]
