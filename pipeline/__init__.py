"""dmd3c data generation (``dmd3c generate``, ``dmd3c teach``): photos -> sample store.

The data flow, one module per stage:

* ``corpus`` (+ ``builtin_corpus``): list the images, key them, plan shards, decode;
* ``teacher``: Depth Anything V2 (or a local folder / hub id) -> raw dense outputs;
* ``camera``, ``mesh``, ``pose``, ``sensors``, ``lidar``, ``raycast``, ``simulate``: metric
  depth, sampled intrinsics, a mesh, a LiDAR mount and preset, the ray-cast scan;
* ``generate``: the job's config, the store it writes and the per-shard work;
* ``job``: one generate job (plan, store lease, skip a complete store, summary);
* ``orchestrate``: its pending shards on Ray (a ``RaySession``, teacher actors, CPU tasks,
  progress); ``ray_reaper`` ends an embedded Ray with its driver;
* ``teach``: full-resolution teacher maps of KITTI images for stage-2 fine-tuning;
* ``cli`` (options derived from the config dataclasses by ``config_options``);
  ``seeding`` (per-sample random streams), ``synthetic`` / ``quicklook`` (analytic scenes
  and pictures for tests and docs).

Writes go through :mod:`data_schemas`; ``pipeline`` never imports ``train``.
"""
