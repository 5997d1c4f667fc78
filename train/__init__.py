"""BP-Net training side of dmd3c: the model (``train.model``); data, losses, engine to come."""
