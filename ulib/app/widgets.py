"""An ipywidgets playground for a trained pair (VQGAN + absorbing prior): sample, inpaint, watch the steps.

`Playground(models, device, dataset)` builds three tabs:

- Sample: decoding method (every method of `ulib.sample.registry`) and its options (KEY=VALUE, the box below it
  lists them with their defaults), steps (1..T), temperature, seed, number of images, canvas width in latent cells
  (wider than the training grid: `ulib.sample.canvas.sample_canvas`, Eq. 8), Generate / Stop, a progress bar fed
  by the sampler's callback, the grid as a PNG (updated in place) and the time per image.
- Inpaint: a validation image (index slider) or the last sample, a rectangle in pixels, Regenerate; shows
  the image with the rectangle greyed out beside the result (`ulib.sample.inpaint.inpaint`, section 4.5).
- Steps: one image sampled step by step with the Sample tab's method (`ulib.sample.trace`); a slider over the kept
  states shows the token map (masked cells black) and the image decoded from the tokens revealed so far; beside
  them the reveal order (a heat map of the step at which each position took the token it keeps) and the entropy of the
  predicted distributions at every step (over the positions still masked, and over those the step wrote).

The logic lives in plain methods (`generate`, `inpaint_region`, `compute_steps`, `show_step`, in
`ulib/app/playground_actions.py`) that the buttons call, so tests drive it without a browser (set values,
`button.click()`). This module builds the widgets and wires the buttons.

Stop. A button handler runs in the kernel; while it runs, the kernel handles no other widget message, so a
Stop click would wait for the sampling to end. With `background=True` (the default inside a Jupyter kernel)
Generate samples in a thread and Stop is handled at once: it sets a flag that the sampler's callback checks
after every pass, which ends the sampling early. `wait()` joins the thread (for scripts and notebooks).
"""
from __future__ import annotations

import threading

import torch

from ulib.app.playground_actions import PlaygroundActions
from ulib.config import downsampling_factor
from ulib.io.logs import preview_upscale
from ulib.sample import registry


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython

        return getattr(get_ipython(), "kernel", None) is not None
    except ImportError:
        return False


class Playground(PlaygroundActions):
    """Widgets around `models` (`ulib.models.SamplingModels`, absorbing prior) on `device`.

    dataset: validation images (C, H, W) in [-1, 1] for the inpainting tab (optional).
    Display it with `display(pg.widget)` (or just `pg` as a cell's last line).
    """

    def __init__(self, models, device, dataset=None, background: bool | None = None, max_images: int = 16):
        import ipywidgets as W

        if models.kind != "absorbing":
            raise ValueError(f"the playground needs an absorbing prior; got kind={models.kind!r}")
        self.m, self.device, self.dataset = models, torch.device(device), dataset
        self.background = _in_kernel() if background is None else background
        T = models.num_timesteps
        self.h, self.w = models.latent_shape
        self.factor = downsampling_factor(models.vqgan.ch_mult)  # pixels per token along each side
        self.img_size = (self.h * self.factor, self.w * self.factor)  # (H, W) of one training window
        self.upscale = preview_upscale(self.img_size[0])
        self.stride = max(1, min(self.h, self.w) // 2)  # window stride on wide canvases
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_images: torch.Tensor | None = None  # (B, 3, H, W) of the last Generate
        self.last_tokens: torch.Tensor | None = None  # (B, h, w') tokens of the last Generate
        self.inpaint_result = None  # ulib.sample.inpaint.InpaintResult of the last Regenerate
        self.states: list[torch.Tensor] = []  # step-by-step: (h, w) tokens after 0..S steps
        self._step_images: dict[int, bytes] = {}
        lay = W.Layout(width="360px")
        style = {"description_width": "120px"}

        # ---- Sample tab -------------------------------------------------------------------------------
        self.method = W.Dropdown(options=list(registry.choices()), value="random", description="method",
                                 layout=lay, style=style)
        self.options = W.Text(value="", description="options", placeholder="KEY=VALUE ...", layout=lay, style=style)
        self.options_help = W.Label(value=self._options_help())
        self.method.observe(self._method_changed, names="value")
        self.steps = W.IntSlider(value=min(max(1, models.default_steps), T), min=1, max=T, description="steps",
                                 layout=lay, style=style)
        self.temperature = W.FloatSlider(value=float(models.default_temperature), min=0.1, max=2.0, step=0.05,
                                         description="temperature", layout=lay, style=style)
        self.seed = W.IntText(value=0, description="seed", layout=lay, style=style)
        self.n_images = W.IntSlider(value=min(max(1, models.default_n), max_images), min=1, max=max_images,
                                    description="images", layout=lay, style=style)
        self.width = W.IntSlider(value=self.w, min=self.w, max=4 * self.w, description="canvas width (cells)",
                                 layout=lay, style=style)
        self.generate_button = W.Button(description="Generate", button_style="primary")
        self.stop_button = W.Button(description="Stop", button_style="warning")
        self.progress = W.IntProgress(value=0, min=0, max=self.steps.value, description="sampling")
        self.image = W.Image(format="png")
        self.timing = W.Label(value="")
        self.message = W.Label(value="")
        self.generate_button.on_click(lambda _: self._start(self.generate))
        self.stop_button.on_click(lambda _: self.stop())
        sample_tab = W.VBox([self.method, self.options, self.options_help, self.steps, self.temperature, self.seed,
                             self.n_images, self.width,
                             W.HBox([self.generate_button, self.stop_button]), self.progress, self.timing,
                             self.message, self.image])

        # ---- Inpaint tab ------------------------------------------------------------------------------
        H, Wd = self.img_size
        n_val = len(dataset) if dataset is not None else 0
        self.source = W.Dropdown(options=(["validation image"] if n_val else []) + ["last sample"],
                                 description="image", layout=lay, style=style)
        self.val_index = W.IntSlider(value=0, min=0, max=max(n_val - 1, 0), description="validation index",
                                     layout=lay, style=style, disabled=not n_val)
        self.x0 = W.IntSlider(value=Wd // 4, min=0, max=Wd, description="x0 (px)", layout=lay, style=style)
        self.y0 = W.IntSlider(value=H // 4, min=0, max=H, description="y0 (px)", layout=lay, style=style)
        self.x1 = W.IntSlider(value=Wd - Wd // 4, min=0, max=Wd, description="x1 (px)", layout=lay, style=style)
        self.y1 = W.IntSlider(value=H - H // 4, min=0, max=H, description="y1 (px)", layout=lay, style=style)
        self.regenerate_button = W.Button(description="Regenerate", button_style="primary")
        self.before = W.Image(format="png")
        self.after = W.Image(format="png")
        self.inpaint_message = W.Label(value="")
        self.regenerate_button.on_click(lambda _: self._safe(self.inpaint_region, self.inpaint_message))
        inpaint_tab = W.VBox([self.source, self.val_index, self.x0, self.y0, self.x1, self.y1,
                              self.regenerate_button, self.inpaint_message,
                              W.HBox([W.VBox([W.Label("before"), self.before]),
                                      W.VBox([W.Label("after"), self.after])])])

        # ---- Steps tab --------------------------------------------------------------------------------
        self.steps_button = W.Button(description="Run step by step", button_style="primary")
        self.step_slider = W.IntSlider(value=0, min=0, max=0, description="step", layout=lay, style=style)
        self.token_map = W.Image(format="png")
        self.step_image = W.Image(format="png")
        self.step_label = W.Label(value="")
        self.reveal_image = W.Image(format="png")
        self.entropy_image = W.Image(format="png")
        self.steps_button.on_click(lambda _: self._safe(self.compute_steps, self.step_label))
        self.step_slider.observe(lambda ch: self.show_step(ch["new"]) if self.states else None, names="value")
        steps_tab = W.VBox([W.Label("uses the method, options, steps, temperature and seed of the Sample tab"),
                            self.steps_button, self.step_slider, self.step_label,
                            W.HBox([W.VBox([W.Label("tokens (black: masked)"), self.token_map]),
                                    W.VBox([W.Label("decoded (grey: masked)"), self.step_image])]),
                            W.HBox([self.reveal_image, self.entropy_image])])

        self.widget = W.Tab(children=[sample_tab, inpaint_tab, steps_tab])
        for i, title in enumerate(("Sample", "Inpaint", "Steps")):
            self.widget.set_title(i, title)
        # Stable CSS classes, so a browser (tests/app/test_browser.py) or a stylesheet can find the widgets
        for w, name in ((self.widget, "playground"), (self.method, "method"), (self.seed, "seed"),
                        (self.n_images, "images"), (self.generate_button, "generate"), (self.stop_button, "stop"),
                        (self.progress, "progress"), (self.timing, "timing"), (self.message, "message"),
                        (self.image, "sample-image"), (self.options, "options"), (self.step_slider, "step"),
                        (self.reveal_image, "reveal-order"), (self.entropy_image, "entropy")):
            w.add_class(f"ulib-{name}")

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def _options_help(self) -> str:
        """What the chosen method takes: its options with their defaults, and what steps means to it."""
        entry = registry.get(self.method.value)
        said = ", ".join(f"{k}={v!r}" for k, v in entry.options.items()) or "none"
        steps = registry.STEPS_HELP.get(entry.steps, "steps: reverse steps 1..T").replace("--steps", "steps")
        return f"{entry.name}: {entry.summary}. Options: {said}. {steps[0].upper()}{steps[1:]}."

    def _method_changed(self, _change) -> None:
        self.options.value = ""  # the options belong to a method
        self.options_help.value = self._options_help()

    # ---- button plumbing ----------------------------------------------------------------------------------
    def _start(self, fn) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.message.value = "already sampling; press Stop first"
            return
        if self.background:
            self._thread = threading.Thread(target=self._safe, args=(fn, self.message), daemon=True)
            self._thread.start()
        else:
            self._safe(fn, self.message)

    def _safe(self, fn, label) -> None:
        """Run fn; show its error in `label` instead of losing it in the widget's log."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 (shown to the user, who can change the settings)
            label.value = f"error: {type(e).__name__}: {e}"

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a Generate running in the background."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        self._stop.set()
