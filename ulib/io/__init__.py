"""Files a run leaves on disk, written so that nothing is ever lost: atomic checkpoints, the run directory,
metrics CSVs and image grids, and the run's models rebuilt from their checkpoints.
"""
