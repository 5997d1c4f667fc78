"""Inference with a trained BP-Net: ``predict`` (load a checkpoint, pad, predict a frame),
``evaluate`` (KITTI devkit and NYUv2 metrics), ``export`` (KITTI benchmark submission),
``complete`` (users' own image + LiDAR), ``cli`` (their commands)."""
