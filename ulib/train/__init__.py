"""Training loops of both stages, the pieces they share (warm-up, resume, global batch, EMA, DDP) and the
token-grid cache the prior trains on.
"""
