"""Stage 1: distillation pre-training on the generated sample store (``dmd3c pretrain``).

``config`` (typed defaults = ``configs/pretrain.yaml``), ``recipe`` (the store stream, the
multi-scale loss to the teacher depth, validation: what the shared engine runs), ``cli``.
"""
