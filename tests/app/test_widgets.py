"""The playground widgets, driven headless: set widget values, `button.click()`, read the widgets back.

One tiny smoke run (4 VQGAN steps, 4 prior steps) is made once for the module through the CLI.
"""
import pytest
import torch

import ulib.app.playground_actions as actions
from ulib.app.widgets import Playground
from ulib.data.datasets import build_dataset
from ulib.io.rundir import RunDir
from ulib.models import load_run
from ulib.sample import registry

from helpers import CACHE, EXAMPLE_METHOD, run_cli

pytest.importorskip("ipywidgets")

SETTINGS = ["--set", "vqgan_train.steps=4", "--set", "prior_train.steps=4", "--set", f"data.cache_dir={CACHE}"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("widgets") / "run"
    for cmd in ("train-vqgan", "encode", "train-prior"):
        r = run_cli(cmd, "--run", str(path), "--profile", "smoke", *SETTINGS)
        assert r.returncode == 0, r.stderr[-3000:]
    return path


@pytest.fixture(scope="module")
def models(run):
    rd = RunDir(run)
    return load_run(rd, "cpu")


@pytest.fixture(scope="module")
def dataset(run):
    return build_dataset(RunDir(run).stored_config().data, "val", train_transforms=False)


@pytest.fixture
def pg(models, dataset):
    p = Playground(models, "cpu", dataset, background=False)
    p.n_images.value = 2
    return p


def test_widgets_cover_the_settings(pg, models):
    T = models.num_timesteps
    assert (pg.steps.min, pg.steps.max) == (1, T)
    assert set(pg.method.options) == set(registry.choices())
    assert pg.width.min == models.latent_shape[1]
    assert pg.widget.get_title(0) == "Sample" and len(pg.widget.children) == 3


def test_a_registered_method_is_offered_and_runs(models, dataset):
    registry.register(EXAMPLE_METHOD)  # a method added by one file (tests/helpers.py): no edit of the widgets
    try:
        p = Playground(models, "cpu", dataset, background=False)
        assert "raster_test" in p.method.options
        p.n_images.value, p.method.value, p.steps.value = 2, "raster_test", 4
        p.generate_button.click()
        assert p.message.value.startswith("raster_test") and p.last_tokens.max() < p.m.mask_id
    finally:
        registry.unregister(EXAMPLE_METHOD.name)


def test_generate_button_sends_settings_and_updates_image(pg, models, monkeypatch):
    calls = []
    real = actions.sample_tokens

    def spy(*a, **kw):
        calls.append((a, kw))
        return real(*a, **kw)

    monkeypatch.setattr(actions, "sample_tokens", spy)
    pg.method.value, pg.steps.value, pg.temperature.value, pg.seed.value = "confidence", 3, 0.7, 5
    pg.n_images.value = 3
    before = pg.image.value
    pg.generate_button.click()
    assert pg.message.value.startswith("confidence"), pg.message.value
    (prior, n), kw = calls[-1]  # the front door, with the playground's models (their T and mask id)
    assert (kw["method"], kw["steps"], kw["temperature"], n) == ("confidence", 3, pytest.approx(0.7), 3)
    assert prior is models
    assert pg.image.value != before and pg.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert pg.timing.value.startswith("3 images in ") and "ms/image" in pg.timing.value
    assert pg.progress.value == pg.progress.max == 3
    assert pg.last_images.shape[0] == 3
    first = pg.image.value
    pg.seed.value = 6  # another seed: another picture; the same seed again: the same picture
    pg.generate_button.click()
    assert pg.image.value != first
    pg.seed.value = 5
    pg.generate_button.click()
    assert pg.image.value == first


@pytest.mark.parametrize("method", ["random", "remask"])
def test_methods_finish(pg, method):
    pg.method.value, pg.steps.value = method, 4
    pg.generate_button.click()
    assert pg.message.value.startswith(method) and pg.last_tokens.max() < pg.m.mask_id


def test_wide_canvas_uses_sample_canvas(pg, models):
    h, w = models.latent_shape
    pg.width.value, pg.steps.value = w + 2, 4
    pg.generate_button.click()
    assert pg.last_tokens.shape == (2, h, w + 2), pg.message.value
    assert pg.last_images.shape[-1] == (w + 2) * pg.factor
    assert "canvas" in pg.message.value


def test_stop_ends_sampling_early(pg, models):
    pg.method.value, pg.steps.value = "remask", models.num_timesteps  # remask: one callback per step
    pg.generate_button.click()
    done = pg.image.value
    pg.seed.value = 1
    pressed = []

    def press_stop(change):  # Stop pressed while sampling, after the first step
        if change["new"] == 1 and not pressed:
            pressed.append(1)
            pg.stop_button.click()

    pg.progress.observe(press_stop, names="value")
    pg.generate_button.click()
    assert pressed and pg.message.value.startswith("stopped after 1 of"), pg.message.value
    assert pg.progress.value == 1 < pg.progress.max
    assert pg.image.value == done  # the stopped run left the picture alone
    pg.progress.unobserve(press_stop, names="value")
    pg.generate_button.click()  # the flag is cleared by the next Generate
    assert pg.progress.value == pg.progress.max and pg.image.value != done


def test_inpaint_keeps_tokens_outside_the_rectangle(pg):
    H, W = pg.img_size
    pg.source.value = "validation image"
    pg.val_index.value = 3
    pg.x0.value, pg.y0.value, pg.x1.value, pg.y1.value = 0, 0, W // 2, H // 2
    pg.regenerate_button.click()
    res = pg.inpaint_result
    assert res is not None, pg.inpaint_message.value
    f = pg.factor
    expected = torch.zeros(pg.h, pg.w, dtype=torch.bool)
    expected[: (H // 2) // f, : (W // 2) // f] = True
    assert torch.equal(res.latent_mask[0].cpu(), expected)
    keep = ~res.latent_mask
    assert torch.equal(res.tokens[keep], res.original_tokens[keep])
    assert pg.before.value[:4] == b"\x89PNG" and pg.after.value[:4] == b"\x89PNG"
    assert "tokens regenerated" in pg.inpaint_message.value


def test_inpaint_last_sample_and_errors(pg):
    pg.source.value = "last sample"
    pg.regenerate_button.click()
    assert "Generate first" in pg.inpaint_message.value
    pg.generate_button.click()
    pg.x0.value = pg.x1.value = 4  # empty rectangle
    pg.regenerate_button.click()
    assert "empty" in pg.inpaint_message.value
    pg.x0.value, pg.x1.value = 0, pg.img_size[1]
    pg.regenerate_button.click()
    keep = ~pg.inpaint_result.latent_mask
    assert torch.equal(pg.inpaint_result.original_tokens[keep], pg.inpaint_result.tokens[keep])


def test_step_by_step(pg, models):
    pg.steps.value = 5
    pg.steps_button.click()
    assert (pg.step_slider.min, pg.step_slider.max) == (0, 5) and len(pg.states) == 6
    L = pg.h * pg.w
    masked = [int((s == models.mask_id).sum()) for s in pg.states]
    assert masked[0] == L and masked[-1] == 0 and masked == sorted(masked, reverse=True)
    first_map, first_img = pg.token_map.value, pg.step_image.value
    pg.step_slider.value = 5
    assert pg.token_map.value != first_map and pg.step_image.value != first_img
    assert pg.step_label.value.startswith("step 5 of 5")
    pg.steps.value = 2  # fewer steps: the slider shrinks
    pg.steps_button.click()
    assert pg.step_slider.max == 2 and pg.step_slider.value == 0


@pytest.mark.parametrize("method", registry.choices())
def test_every_method_steps_with_its_reveal_order_and_entropy(pg, models, method):
    """The Steps tab runs the Sample tab's method: its states end at what Generate draws with the same settings,
    the heat map and the entropy plot are drawn, and the label says what the shown step did."""
    pg.method.value, pg.steps.value, pg.seed.value, pg.n_images.value = method, 4, 3, 1
    pg.steps_button.click()
    assert pg.states, pg.step_label.value
    L = pg.h * pg.w
    assert int((pg.states[0] == models.mask_id).sum()) == L and not (pg.states[-1] == models.mask_id).any()
    pg.generate_button.click()  # the same method, steps, temperature and seed through the same front door
    assert torch.equal(pg.states[-1], pg.last_tokens[0].cpu()), method
    assert pg.reveal_image.value[:4] == b"\x89PNG" and pg.entropy_image.value[:4] == b"\x89PNG"
    assert (pg.trace.last >= 0).all() and pg.trace.last.max() < len(pg.states) - 1
    ran = [k for k, r in enumerate(pg.entropies) if r["masked"] is not None]
    assert len(ran) == pg.trace.passes >= 1
    k = ran[0] + 1
    before = pg.entropy_image.value
    pg.step_slider.value = k
    assert pg.step_label.value.startswith(f"step {k} of {len(pg.states) - 1}")
    assert "mean entropy" in pg.step_label.value and "nats" in pg.step_label.value
    assert pg.entropy_image.value != before  # the shown step is marked


def test_options_box_reaches_the_sampler_and_bad_options_are_named(pg, monkeypatch):
    calls = []
    real = actions.sample_tokens
    monkeypatch.setattr(actions, "sample_tokens", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    pg.method.value = "confidence"
    assert "choice_temperature=4.5" in pg.options_help.value  # the method's options with their defaults
    pg.options.value = "schedule=linear, choice_temperature=0"
    pg.generate_button.click()
    assert (calls[-1]["schedule"], calls[-1]["choice_temperature"]) == ("linear", 0.0), pg.message.value
    assert "schedule='linear'" in pg.message.value
    pg.steps_button.click()
    assert calls[-1]["schedule"] == "linear" and "schedule='linear'" in pg.steps_summary
    pg.options.value = "gamma=2"  # not a setting of confidence
    pg.generate_button.click()
    assert pg.message.value.startswith("error") and "gamma" in pg.message.value and "confidence" in pg.message.value
    pg.method.value = "eb"  # another method: its own options, the box emptied
    assert pg.options.value == "" and "gamma" in pg.options_help.value and "caps" in pg.options_help.value


def test_background_thread(models):
    pg = Playground(models, "cpu", background=True)
    pg.n_images.value = 1
    pg.generate_button.click()
    pg.wait(60)
    assert pg.image.value and "images in" in pg.timing.value
