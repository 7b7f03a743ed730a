"""What the playground's buttons do (`ulib.app.widgets.Playground`): sample with the Sample tab's settings and stop
early, regenerate a rectangle of an image, and sample one image step by step with any registered method, showing
every state, the reveal order and the entropy of each step.

`PlaygroundActions` holds these as plain methods (`generate`, `inpaint_region`, `compute_steps`, `show_step`),
so tests and notebooks drive them without a browser. It reads its settings from the widgets `Playground` builds
(method, options, steps, temperature, seed, n_images, width; source, val_index, x0, y0, x1, y1) and writes its
results into them (image, progress, timing, message; before, after, inpaint_message; step_slider, token_map,
step_image, step_label, reveal_image, entropy_image). Images are (B, 3, H, W) in [-1, 1]; token grids (B, h, w),
w wider on a canvas (Eq. 8).
"""
from __future__ import annotations

import io
import re
import time

import numpy as np
import torch
from PIL import Image

from ulib.app.flags import method_options
from ulib.app.outputs import token_picture
from ulib.app.step_view import entropy_png, reveal_png
from ulib.io.logs import image_grid
from ulib.sample.api import sample_tokens
from ulib.sample.inpaint import inpaint
from ulib.sample.trace import EntropyProbe, StepTrace, reveal_map, step_entropies


class StopSampling(Exception):
    """Raised from the sampling callback when Stop was pressed."""


def png_bytes(images: torch.Tensor, nrow: int | None = None, upscale: int = 1, padding: int = 1) -> bytes:
    """Images (B, 3, H, W) in [-1, 1] (or one uint8 (H, W, 3) array) -> PNG bytes of their grid."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        grid = image_grid(images[None], 1, padding=0, upscale=upscale)
    else:
        grid = image_grid(images, nrow, padding=padding, upscale=upscale)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(grid)).save(buf, format="PNG")
    return buf.getvalue()


class PlaygroundActions:
    """The playground's work, mixed into `ulib.app.widgets.Playground`, which sets what it uses: `m` (the
    `ulib.models.SamplingModels`), `device`, `dataset`, the grid `h`, `w`, `factor` (pixels per token), `img_size`,
    `upscale`, `stride`, the `_stop` event, and the widgets named in the module docstring."""

    def _generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(self.seed.value))

    def method_settings(self) -> tuple[str, dict]:
        """The Sample tab's method and its settings from the options box: KEY=VALUE pairs separated by spaces or
        commas, typed and checked as `--option` is (an unknown key or a bad value is a ValueError naming both)."""
        pairs = [p for p in re.split(r"[,\s]+", self.options.value.strip()) if p]
        return self.method.value, method_options(self.method.value, pairs)

    @torch.no_grad()
    def _decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, h, w') -> images (B, 3, H, W') in [-1, 1] (the generator is convolutional)."""
        return self.m.vqgan.generator(self.m.vqgan.quantize.to_latent(tokens.long())).clamp(-1, 1)

    # ---- Sample ---------------------------------------------------------------------------------------
    def generate(self) -> torch.Tensor | None:
        """Sample with the widgets' settings; update the image, progress and timing. Returns the images (B, 3,
        H, W'), or None when Stop ended the sampling early (the image then keeps the previous samples)."""
        self._stop.clear()
        m, n, steps, temp = self.m, int(self.n_images.value), int(self.steps.value), float(self.temperature.value)
        (method, options), cells = self.method_settings(), int(self.width.value)
        self.progress.value, self.progress.max = 0, steps  # 'random' may need fewer passes than steps
        self.message.value = "sampling..."

        def callback(k, _result):
            self.progress.value = min(k + 1, self.progress.max)
            if self._stop.is_set():
                raise StopSampling

        t0 = time.perf_counter()
        try:
            # one front door: a canvas wider than the window (Eq. 8) or a window-sized grid, (B, h, cells)
            wide = cells > self.w  # a canvas is drawn in random order whatever the method
            tokens = sample_tokens(m, n, method="random" if wide else method, steps=steps, temperature=temp,
                                   canvas=(self.h, cells) if wide else None, stride=self.stride,
                                   generator=self._generator(), device=self.device, callback=callback,
                                   **({} if wide else options))
        except StopSampling:
            self.message.value = f"stopped after {self.progress.value} of {steps} steps; image not updated"
            return None
        images = self._decode(tokens)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - t0
        self.progress.value = self.progress.max
        self.last_tokens, self.last_images = tokens, images
        self.image.value = png_bytes(images, upscale=self.upscale)
        self.timing.value = f"{n} images in {dt:.2f} s ({1000 * dt / n:.0f} ms/image)"
        said = "".join(f", {k}={v!r}" for k, v in options.items())
        self.message.value = (f"canvas {self.h}x{cells} cells (Eq. 8, random order; method and options ignored)"
                              if cells > self.w else f"{method}{said}, {steps} steps, temperature {temp:g}")
        return images

    # ---- Inpaint --------------------------------------------------------------------------------------
    def source_image(self) -> torch.Tensor:
        """The image to edit, (1, 3, H, W) in [-1, 1] on the device."""
        if self.source.value == "last sample":
            if self.last_images is None:
                raise ValueError("no sample yet: press Generate first, or choose a validation image")
            img = self.last_images[:1]
            if tuple(img.shape[-2:]) != self.img_size:
                raise ValueError(f"the last sample is {tuple(img.shape[-2:])} pixels; inpainting needs the training "
                                 f"window {self.img_size} (set the canvas width to {self.w})")
            return img.to(self.device)
        if self.dataset is None:
            raise ValueError("no validation dataset was given to the playground")
        return self.dataset[int(self.val_index.value)][None].to(self.device)

    def pixel_mask(self) -> torch.Tensor:
        """(H, W) bool: the rectangle [y0, y1) x [x0, x1) of the sliders (corners in either order)."""
        H, Wd = self.img_size
        x0, x1 = sorted((int(self.x0.value), int(self.x1.value)))
        y0, y1 = sorted((int(self.y0.value), int(self.y1.value)))
        m = torch.zeros(H, Wd, dtype=torch.bool)
        m[y0:y1, x0:x1] = True
        return m

    def inpaint_region(self):
        """Regenerate the rectangle of the source image; shows before/after. Returns the InpaintResult."""
        img, pm = self.source_image(), self.pixel_mask().to(self.device)
        if not pm.any():
            raise ValueError("the rectangle is empty: make x0 != x1 and y0 != y1")
        t0 = time.perf_counter()
        res = inpaint(self.m.vqgan, self.m.prior, img, pm, num_timesteps=self.m.num_timesteps, mask_id=self.m.mask_id,
                      steps=int(self.steps.value), temperature=float(self.temperature.value),
                      generator=self._generator())
        dt = time.perf_counter() - t0
        self.inpaint_result = res
        self.before.value = png_bytes(torch.where(pm, torch.zeros_like(img), img), upscale=self.upscale)
        self.after.value = png_bytes(res.images.clamp(-1, 1), upscale=self.upscale)
        n = int(res.latent_mask.sum())
        self.inpaint_message.value = (f"{n} of {res.latent_mask[0].numel()} tokens regenerated from t0 = "
                                      f"{res.start_times[0]} in {dt:.2f} s")
        return res

    # ---- Steps ----------------------------------------------------------------------------------------
    def compute_steps(self) -> list[torch.Tensor]:
        """Sample one image step by step with the Sample tab's method, options, steps, temperature and seed
        (through `sample_tokens`, as Generate does); keep the S + 1 states x_T, ..., x_0, the reveal order and the
        entropy of every step (`ulib.sample.trace`), and set the step slider to 0..S. Returns the states (h, w)."""
        m, temp = self.m, float(self.temperature.value)
        method, options = self.method_settings()
        probe = EntropyProbe(m.prior, m.mask_id, temp)  # the network, recording the entropy of each call
        L = self.h * self.w
        trace = StepTrace(torch.full((1, L), m.mask_id, dtype=torch.long), keep_states=True, probe=probe)
        sample_tokens(probe, 1, method=method, steps=int(self.steps.value), temperature=temp,
                      generator=self._generator(), num_timesteps=m.num_timesteps, mask_id=m.mask_id,
                      grid=(self.h, self.w), device=self.device, callback=trace, **options)
        self.trace, self.step_results = trace, trace.steps
        self.states = [x[0].view(self.h, self.w) for x in trace.states]
        self.entropies, self._step_images = step_entropies(trace), {}
        S = len(self.states) - 1
        self.steps_summary = (f"{method}: {S} steps, {trace.passes} network calls, temperature {temp:g}"
                              + "".join(f", {k}={v!r}" for k, v in options.items()))
        self.reveal_image.value = reveal_png(reveal_map(trace.last, (self.h, self.w)), S,
                                             title=f"reveal order ({method})")  # the step that wrote the token kept
        self.step_slider.max = 0  # shrink first: value stays in range whatever the old max
        self.step_slider.value = 0
        self.step_slider.max = S
        self.show_step(0)
        return self.states

    def show_step(self, k: int) -> None:
        """Show state k (after k steps): token map, the image decoded from the revealed tokens, the entropy plot
        with step k marked, and a line saying what step k did."""
        x = self.states[k]  # (h, w)
        masked = x == self.m.mask_id
        K = self.m.vqgan.codebook_size
        self.token_map.value = png_bytes(token_picture(x, K, self.m.mask_id, cell=max(1, 96 // self.w)))
        if k not in self._step_images:
            img = self._decode(torch.where(masked, torch.zeros_like(x), x)[None])  # (1, 3, H, W)
            grey = masked.repeat_interleave(self.factor, 0).repeat_interleave(self.factor, 1)  # (H, W) pixel blocks
            img = torch.where(grey.to(img.device), torch.zeros_like(img), img)
            self._step_images[k] = png_bytes(img, upscale=self.upscale)
        self.step_image.value = self._step_images[k]
        self.entropy_image.value = entropy_png(self.entropies, current=k, title=self.steps_summary)
        if k == 0:
            self.step_label.value = f"x_T: all {masked.numel()} tokens masked"
            return
        r, e = self.step_results[k - 1], self.entropies[k - 1]
        when = f"t {r.extras['t']} -> {r.extras['s']}, " if {"t", "s"} <= set(r.extras) else ""
        said = (f"mean entropy {e['masked']:.2f} nats over {e['n_masked']} masked"
                + (f", {e['written']:.2f} over the {e['n_written']} it wrote" if e["written"] is not None else "")
                if e["masked"] is not None else "no network call")
        self.step_label.value = (f"step {k} of {len(self.states) - 1}: {when}wrote {int(r.unmasked.sum())}, "
                                 f"still masked {int(masked.sum())}; {said}")
