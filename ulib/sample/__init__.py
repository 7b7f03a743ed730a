"""Sampling (prior -> tokens): the absorbing sampler and its step skipping, MaskGIT-style confidence and
remasking, inpainting, canvases larger than the training window (Eq. 8), the AR baseline's sampler, and
the opt-in CPU accelerator for one-position steps.

The front door is `ulib.sample.api` (`from ulib import load_run, sample_tokens, sample_images`). Under it every
sampler of the absorbing family has the same shape: built with the prior (any callable tokens -> logits,
`ulib.sample.network`) and its settings; `initial_state(...)` gives the all-masked start; `step(x, k, ...)`
does one step and returns a `SampleStep`; `sample(x, callback=None, progress=False)` runs every step from the
start state x, whose mask tokens it fills. The AR baseline grows a prefix instead: `ARSampler.sample(batch,
length, device, x=prefix)`.
"""
