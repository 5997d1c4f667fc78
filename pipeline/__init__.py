"""dmd3c data generation: geometry (camera, mesh, LiDAR simulation) and, later, orchestration."""
