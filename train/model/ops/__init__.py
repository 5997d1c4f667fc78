"""Pure-PyTorch replacements for the official BP-Net CUDA extension (CPU and GPU)."""

from train.model.ops.knn import KnnResult, sparse_knn
from train.model.ops.local_conv import local_conv2d

__all__ = ["KnnResult", "local_conv2d", "sparse_knn"]
