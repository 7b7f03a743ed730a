"""Sampling (prior -> tokens): the absorbing sampler and its step skipping, MaskGIT-style confidence and
remasking, ReMDM, first-hitting sampling, inpainting, canvases larger than the training window (Eq. 8), the AR
baseline's sampler, exact speculative sampling of it with the absorbing prior drafting, and the opt-in CPU
accelerator for one-position steps.

The front door is `ulib.sample.api` (`from ulib import load_run, sample_tokens, sample_images`). Under it every
method follows one protocol (`ulib.sample.base`): a `Sampler` built over a `SamplingContext` (the prior as a
callable tokens -> logits, `ulib.sample.network`, with T, the mask id, the window, the temperature and the
generator), a number of steps and its own `Options`; `start(x)` prepares a run from the start state x and returns
its step count, `step(x, k)` returns a `SampleStep`, `sample(x, callback=None, progress=False)` runs them all.
The methods are listed by name in `ulib.sample.registry`, which `sample_tokens`, the CLI, the widgets, bench and
gpu-check read.
"""
