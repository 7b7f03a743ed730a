"""Measuring: FID/KID/PRDC and the paper's other metrics, the OpenMoji feature space, sample quality with
uncertainty and noise floor, diagnostics, and speed benchmarks.
"""
