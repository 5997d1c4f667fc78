"""BP-Net training side of dmd3c: the model (``train.model``) and, later, data, losses and engine."""
