"""ulib: Unleashing Transformers (Bond-Taylor et al., ECCV 2022), a readable tutorial and reproduction kit.

Stage 1 (`ulib.vq.model`): a VQGAN compresses images to grids of codebook indices.
Stage 2 (`ulib.prior.transformer`, `ulib.prior.absorbing`): an absorbing discrete diffusion prior over those grids.

The built-in dataset is OpenMoji (https://openmoji.org, CC BY-SA 4.0): "All emojis designed by OpenMoji -
the open-source emoji and icon project."
"""
__version__ = "0.1.0"
