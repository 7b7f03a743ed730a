"""Stage 0, the data: datasets (OpenMoji rendered offline, image folders, LSUN) and deterministic batches.
"""
