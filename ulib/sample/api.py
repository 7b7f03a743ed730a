"""The front door for sampling: `load_run`, `sample_tokens`, `sample_images` (also `from ulib import ...`).

    models = load_run("runs/demo")                        # a run's VQGAN + prior, with T, mask id and grid
    tokens = sample_tokens(models, 16, steps=64, temperature=0.8, generator=g)   # prior -> tokens (16, h, w)
    images = sample_images(models, 16, steps=64, seed=0)  # ... then the VQGAN decodes them to pixels

`sample_tokens` covers every way the kit samples. Each grid starts with the mask id where tokens are to be
generated (all of it by default; with `x_start` the other tokens are kept and never change: inpainting) and
ends with no mask token left.
- absorbing prior, method='random' (the paper's reverse process, section 3.2, with evenly spaced step
  skipping; `ulib.sample.absorbing`): each masked position is revealed at a random step of the time schedule
  and drawn from softmax(logits / temperature). The whole per-image schedule is drawn first and each image's
  empty steps are dropped, so a batch costs max over images of their non-empty steps in forward passes. With
  `x_start` it starts at t = round(T * m / L) for m masked positions, the time whose expected mask fraction
  t/T matches.
- method='confidence' (MaskGIT; `ulib.sample.maskgit`), method='remask' (the official `sample_mlm`;
  `ulib.sample.remask`), method='halton' (a fixed quasi-random visiting order; `ulib.sample.halton`),
  method='eb' (entropy-bounded adaptive steps, whose number of calls is a result; `ulib.sample.entropy_bounded`),
  method='remdm' (ReMDM's re-masking steps and loop; `ulib.sample.remdm`) and method='first_hitting' (one token
  per call at analytic times; `ulib.sample.first_hitting`); any other method of the registry
  (`ulib.sample.registry`) by its name. What `steps` means depends on the method (`registry.Method.steps`):
  1..T schedule steps for most, a cap on the calls for 'eb', unused by 'first_hitting'.
- canvas=(H, W): a grid larger than the training window, each position's prediction the average over the
  windows that cover it (Eq. 8; `ulib.sample.canvas`).
- an autoregressive prior (told by the network's `causal`): token by token in raster order
  (`ulib.sample.autoregressive`), with top_k; method='speculative' draws the same law with fewer AR passes, an
  absorbing prior drafting (`ulib.sample.speculative`; options draft=, block=, draft_steps=, ...).
`sample_tokens` resolves its inputs into a `SamplingContext`, builds the method from the registry and samples
(the protocol of `ulib.sample.base`). The samplers receive the network as a callable, tokens (B, L) -> logits
(B, L, K) (`ulib.sample.network`: `logits_at` runs only the requested positions through the head when the
network has `features` and `head`), so `prior` may be any such callable (then give num_timesteps and mask_id);
every step is a separate call, like diffusers' `scheduler.step`, for notebooks and widgets.
"""
from __future__ import annotations

import torch

from ulib.device import sampling_dtype
from ulib.models import SamplingModels, load_run  # noqa: F401 (load_run: the front door's loading, ulib.models)
from ulib.sample import registry
from ulib.sample.base import SamplingContext
from ulib.sample.canvas import decode_canvas
from ulib.sample.network import network_device
from ulib.sample.precision import prior_for_sampling
from ulib.vq.chunked import decode_chunked


def sample_tokens(prior, n: int | None = None, *, method: str = "random", steps: int | None = None,
                  temperature: float = 1.0, generator: torch.Generator | None = None,
                  x_start: torch.Tensor | None = None, canvas: tuple[int, int] | None = None, stride: int = 1,
                  top_k: int | None = None, num_timesteps: int | None = None, mask_id: int | None = None,
                  grid: tuple[int, int] | None = None, length: int | None = None, device=None, callback=None,
                  precision: str = "fp32", compile: bool = False, **options) -> torch.Tensor:
    """Draw n token grids from `prior`: LongTensor (n, h, w) where the grid is known, else (n, L).

    prior: a `SamplingModels` (from `load_run` or `ulib.models.load_official`), whose T, mask id and
      grid are used, or the network itself, or any callable tokens (B, L) -> logits (B, L, K)
      (`ulib.sample.network`); these need num_timesteps, and mask_id where they have no `mask_id` attribute
      (a plain callable also needs length or grid); grid (h, w) shapes the result.
    method: 'random' (default), 'confidence', 'remask', 'halton', 'eb', 'remdm', 'first_hitting' or any registered
      name (module docstring); the AR prior samples in raster order ('random') or speculatively ('speculative',
      with draft= the absorbing network as an option).
    steps: as the method reads it (`ulib.sample.registry`, `resolve_steps`): 1..T reverse steps (default T) for
      'random', 'confidence', 'remask', 'halton' and 'remdm'; for 'eb' a cap on the network calls per image
      (default none); 'first_hitting' declares steps 'unused' and ignores it. temperature > 0 divides the logits.
    x_start (n, L) or (n, h, w): tokens to keep, mask_id where to generate; n may then be left out.
    canvas: (H, W) latent cells, larger than the window (Eq. 8); stride: the windows' spacing.
    top_k: the AR prior's top-k restriction. device: defaults to x_start's, else to the network's.
    precision: the prior's weights and activations while sampling, 'fp32' (the network as given), 'bf16' (a bf16
      copy, logits back in float32; `ulib.sample.precision`) or 'auto' (bf16 on GPUs that have it natively).
      compile: run the network through torch.compile(dynamic=False) (with method='random', pair it with
      fixed_shape=True: one shape, one graph).
    callback(k, step_result) after each step. options: the method's own settings, by name
      (`ulib.sample.registry.get(method).options`: 'random' takes skip_empty_steps=True; 'confidence'
      schedule='cosine'|'linear' and choice_temperature=4.5 (>= 0); 'halton' shift=True; 'eb' gamma; 'remdm'
      schedule='cap'|'rescale', eta=0.05, loop_steps=0 (network calls on top of steps) and loop_time=0.1; a canvas
      window_subset, order, window_batch); progress=True shows a progress bar over the steps.
    """
    net = prior
    if isinstance(prior, SamplingModels):
        net, grid = prior.prior, prior.latent_shape
        num_timesteps = prior.num_timesteps if num_timesteps is None else num_timesteps
        mask_id = prior.mask_id if mask_id is None else mask_id
    dtype = sampling_dtype(network_device(net), precision)
    net = prior_for_sampling(net, dtype, compile)
    if isinstance(options.get("draft"), torch.nn.Module):  # the speculative draft runs in the same precision
        options["draft"] = prior_for_sampling(options["draft"], dtype)
    if not temperature > 0:
        raise ValueError(f"temperature={temperature}; must be > 0")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n={n!r}; must be an integer >= 1")
    if length is None:
        length = grid[0] * grid[1] if grid is not None else getattr(net, "block_size", None)
    if x_start is not None and x_start.dim() == 3 and canvas is None:
        grid = tuple(x_start.shape[1:])
        x_start = x_start.reshape(x_start.shape[0], -1)
    progress = options.pop("progress", False)
    if getattr(net, "causal", False):  # the AR baseline (Table 4), token by token or speculatively
        others = tuple(m.name for m in registry.METHODS.values()
                       if m.prior == "autoregressive" and m.name != "autoregressive")
        name = "autoregressive" if method == "random" else method
        if name not in others + ("autoregressive",):
            raise ValueError(f"method={method!r} is not a method of the AR prior; allowed: 'random' "
                             f"(raster order, the default) or {others}")
        if canvas is not None or x_start is not None or (options and name == "autoregressive"):
            raise ValueError("canvas, x_start and options apply to the absorbing prior; the AR prior samples in "
                             "raster order (method='random', or 'speculative' with its options)")
        ctx = SamplingContext(net, 0, None, length, grid, temperature, generator)
        sampler = registry.build(name, ctx, top_k=top_k, **options)
        tokens = sampler.sample(sampler.initial_state(n, device or network_device(net)), callback, progress)
        return tokens.view(n, *grid) if grid is not None else tokens
    if top_k is not None:
        raise ValueError("top_k applies to the AR prior; the absorbing prior samples from the whole softmax")
    entry = registry.get(method)
    if not isinstance(num_timesteps, int) or num_timesteps < 1:
        raise ValueError(f"num_timesteps={num_timesteps!r}; must be an integer >= 1")
    T = num_timesteps
    mask_id = getattr(net, "mask_id", None) if mask_id is None else mask_id
    if not isinstance(mask_id, int) or mask_id < 0:
        raise ValueError(f"mask_id={mask_id!r}; a network without a mask_id attribute (a plain callable) needs "
                         f"mask_id= (the absorbing state's id, the codebook size)")
    steps = registry.resolve_steps(method, steps, T)
    if canvas is not None:
        if "canvas" not in entry.supports:
            if entry.on_canvas is None:
                raise ValueError(f"method={method!r} with a canvas; a canvas is sampled by the random-order process")
            entry = registry.get(entry.on_canvas)
        if grid is None:
            raise ValueError("a canvas needs the training window: pass grid=(h, w) or a SamplingModels")
        ctx = SamplingContext(net, T, mask_id, grid[0] * grid[1], tuple(grid), temperature, generator)
        sampler = registry.build(entry.name, ctx, steps, canvas=tuple(canvas), stride=stride, **options)
        if x_start is None:
            x_start = sampler.initial_state(n or 1, device if device is not None else network_device(net))
        return sampler.sample(x_start.long(), callback, progress)
    if x_start is not None and "x_start" not in entry.supports:
        raise ValueError(f"method={method!r} does not take x_start (given tokens); methods that do: "
                         f"{[m.name for m in registry.METHODS.values() if 'x_start' in m.supports]}")
    x = _start_state(net, n, length, mask_id, x_start, device)
    ctx = SamplingContext(net, T, mask_id, x.shape[1], grid, temperature, generator)
    tokens = registry.build(entry.name, ctx, steps, **options).sample(x, callback, progress)
    return tokens.view(tokens.shape[0], *grid) if grid is not None else tokens


@torch.no_grad()
def sample_images(models: SamplingModels, n: int, *, steps: int | None = None, temperature: float | None = None,
                  seed: int = 0, method: str = "random", canvas: tuple[int, int] | None = None, stride: int = 1,
                  top_k: int | None = None, precision: str = "auto", return_tokens: bool = False, callback=None,
                  compile: bool = False, **options):
    """n decoded samples (n, 3, H, W) in [-1, 1] from the pair `models` (and their tokens if return_tokens).

    steps and temperature default to the models' (a run's sample settings; steps only where the method reads
    them as schedule steps, `ulib.sample.registry`); seed seeds the generator on the models' device. precision:
    the prior's forward pass in 'fp32', 'bf16' (a bf16 copy of the prior, `ulib.sample.precision`) or 'auto' (bf16
    on GPUs that have it natively, `ulib.device.sampling_dtype`); the VQGAN always decodes in fp32 (in chunks that fit
    the free memory, `ulib.vq.chunked`). compile: the
    prior through torch.compile (`sample_tokens`). callback and options (the method's own settings, by name) go
    to `sample_tokens`."""
    device = next(models.prior.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    if registry.get(method).steps in ("schedule", "total"):
        steps = steps or models.default_steps
    temperature = temperature or models.default_temperature
    tokens = sample_tokens(models, n, method=method, steps=steps if models.kind == "absorbing" else None,
                           temperature=temperature, generator=g, canvas=canvas, stride=stride, top_k=top_k,
                           device=device, callback=callback, precision=precision, compile=compile, **options)
    # the VQGAN decodes in chunks sized from the free memory (`ulib.vq.chunked`): the same images as one call
    decode = decode_canvas if canvas is not None else decode_chunked
    images = decode(models.vqgan, tokens).clamp(-1, 1)
    return (images, tokens) if return_tokens else images


def _start_state(model, batch, length, mask_id, x_start, device) -> torch.Tensor:
    """The (B, L) long start grid: x_start checked against batch/length, or all masked."""
    if x_start is None:
        for name, v in (("n", batch), ("length", length)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r}; must be an integer >= 1 (or give x_start)")
        if device is None:
            device = network_device(model)
        return torch.full((batch, length), mask_id, dtype=torch.long, device=device)
    if not isinstance(x_start, torch.Tensor) or x_start.dim() != 2:
        raise ValueError(f"x_start must be a (B, L) tensor; got {getattr(x_start, 'shape', type(x_start))}")
    want = (batch if batch is not None else x_start.shape[0], length if length is not None else x_start.shape[1])
    if tuple(x_start.shape) != want:
        raise ValueError(f"x_start of shape {tuple(x_start.shape)}; expected (n, length) = {want}")
    if x_start.dtype.is_floating_point or x_start.dtype == torch.bool or x_start.dtype.is_complex:
        raise ValueError(f"x_start of dtype {x_start.dtype}; expected integer token ids")
    if x_start.numel() and int(x_start.min()) < 0:
        raise ValueError(f"x_start holds negative token id {int(x_start.min())}")
    if device is not None and torch.device(device).type != x_start.device.type:
        raise ValueError(f"x_start is on {x_start.device} but device={device}")
    return x_start.long()
