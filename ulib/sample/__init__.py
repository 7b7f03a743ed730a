"""Sampling (prior -> tokens): the absorbing sampler and its step skipping, MaskGIT-style confidence and
remasking, inpainting, canvases larger than the training window (Eq. 8), the AR baseline's sampler, and
the opt-in CPU accelerator for one-position steps.
"""
