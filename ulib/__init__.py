"""ulib: Unleashing Transformers (Bond-Taylor et al., ECCV 2022), a readable tutorial and reproduction kit.

Stage 1 (`ulib.vq`): a VQGAN compresses images to grids of codebook indices.
Stage 2 (`ulib.prior`): an absorbing discrete diffusion prior over those grids; `ulib.sample` draws from it.

The packages, in the order they import each other (each imports only those before it):
overrides, config, profiles, device, paper -> io -> data -> vq -> prior -> trained, official_layout, official -> models
-> sample -> train -> eval -> app.
(overrides: mappings and `section.key=value` strings to typed dataclass fields; io: files on disk, written atomically;
trained: a run's models rebuilt from its config and checkpoints; official_layout: the key layout of the paper's
released checkpoints; official: loading them; models: the one door for loading either, `load_run` and
`load_official`.)

Glossary (one name per idea):
- decode: VQGAN tokens -> pixels (`VQAutoEncoder.decode`, `ulib.sample.canvas.decode_canvas`); an image file
  becomes pixels by `ulib.data.images.read_image`.
- sample: prior -> tokens (`ulib.sample`); an image sample is a sample decoded.
- prior: the network over token grids (`ulib.prior.transformer.Transformer`), absorbing or autoregressive;
  its process (masking, losses, ELBO) lives beside it in `ulib.prior.absorbing`.
- sampler: an algorithm that draws tokens from a prior step by step (`AbsorbingSampler`,
  `ConfidenceSampler`, `RemaskSampler`, `ReMDMSampler`, `FirstHittingSampler`, `CanvasSampler`, `ARSampler`); it
  sees the prior only as a callable, tokens -> logits (`ulib.sample.network`). The official code calls the network a
  "sampler"; here only `ulib.official.load_sampler` keeps that name, for its released files.
- run: a folder holding one trained pair, its config, logs and pictures (`ulib.io.rundir.RunDir`); loaded by
  `ulib.models.load_run`.
- profile: named settings (`ulib.profiles`): smoke, demo, study and the paper's.

The built-in dataset is OpenMoji (https://openmoji.org, CC BY-SA 4.0): "All emojis designed by OpenMoji -
the open-source emoji and icon project."
"""
__version__ = "0.1.0"

# the front door for sampling: a run's models, prior -> tokens, tokens -> images (ulib.sample.api)
from ulib.sample.api import load_run, sample_images, sample_tokens  # noqa: E402

__all__ = ["load_run", "sample_images", "sample_tokens"]
