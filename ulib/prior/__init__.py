"""Stage 2, the prior (paper section 3.2): the transformer over token grids, the absorbing diffusion
process with its losses and ELBO (Eq. 6, 7), and the autoregressive baseline (Table 4).
"""
