"""Real KITTI scans: reading a frame, deriving a sensor's laser table, measuring realism."""
