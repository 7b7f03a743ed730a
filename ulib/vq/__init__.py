"""Stage 1, the VQGAN (paper section 3.1): the autoencoder and its codebook, the patch discriminator, the
perceptual loss, DiffAugment and the training objective (Eq. 9).
"""
