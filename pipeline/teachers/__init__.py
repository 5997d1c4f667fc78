"""Monocular depth teachers: registry, preprocessing, model families, LiDAR inputs and alignment.

:mod:`pipeline.teacher` is the entry point (``Teacher``, ``TeacherConfig``, ``resolve_teacher``);
the modules here are its parts:

* :mod:`.registry`  named teachers, what each outputs and needs, resolving names and folders;
* :mod:`.resize`    the official Depth Anything V2 network size and resampling (OpenCV-equal);
* :mod:`.pos_embed` the official DINOv2 position-embedding interpolation (scale factor + 0.1);
* :mod:`.families`  per-model-family pre- and post-processing around the transformers model;
* :mod:`.kitti`     the LiDAR map and calibrated focal length of a KITTI image;
* :mod:`.prompt`    sparse LiDAR -> low-resolution depth prompt; sparse maps onto the canvas;
* :mod:`.align`     robust per-image affine fit of a teacher map to the frame's LiDAR;
* :mod:`.tiny`      tiny random models of every family (tests, offline smoke runs).
"""
