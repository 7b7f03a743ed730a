"""The playground in a real browser: JupyterLab on localhost, notebook 11 opened in headless Chromium, Run All
Cells, then a user's input (seed, number of images, method, Generate) and a new image in the page.

Playwright drives Debian's Chromium (`/usr/bin/chromium`, or $ULIB_CHROMIUM); it never downloads a browser.
Without Chromium or Playwright the test is skipped, except under CI=true, where it fails: CI must not pass by
skipping (the `chromium` fixture, tests/conftest.py). `make browser-deps` installs Chromium, `make test-browser`
runs this file alone. The screenshot of the widget lands in the test's tmp dir, and in
docs/images/playground_browser.png with ULIB_SAVE_SCREENSHOT=1.

One tiny smoke run (4 VQGAN steps, 4 prior steps, as in test_widgets.py) is made through the CLI; the
notebook (parameters injected by papermill, not executed) loads it and trains nothing. Its samples are noise;
ULIB_BROWSER_RUN=runs/demo opens a trained run instead (how docs/images/playground_browser.png was taken).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

from ulib.io.rundir import RunDir

from helpers import CACHE, CHROMIUM_FLAGS, ROOT, run_cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETTINGS = ["--set", "vqgan_train.steps=4", "--set", "prior_train.steps=4", "--set", f"data.cache_dir={CACHE}"]
NOTEBOOK = ROOT / "notebooks" / "11_playground.ipynb"
SCREENSHOT = ROOT / "docs" / "images" / "playground_browser.png"
TIMEOUT_MS = 120_000  # one browser wait (page load, Run All, one Generate); the smoke run needs seconds


@pytest.fixture(scope="module")
def run(tmp_path_factory, chromium):
    """The run the notebook opens: $ULIB_BROWSER_RUN if set (a trained run such as runs/demo, for a screenshot
    worth looking at; the notebook adds its pictures to RUN/results/), else a tiny smoke run made here."""
    if os.environ.get("ULIB_BROWSER_RUN"):
        path = (ROOT / os.environ["ULIB_BROWSER_RUN"]).resolve()
        assert (path / "prior.pt").exists(), f"ULIB_BROWSER_RUN={path} has no prior.pt"
        return path
    path = tmp_path_factory.mktemp("browser") / "run"
    for cmd in ("train-vqgan", "encode", "train-prior"):
        r = run_cli(cmd, "--run", str(path), "--profile", "smoke", *SETTINGS)
        assert r.returncode == 0, r.stderr[-3000:]
    return path


# ---- JupyterLab as a subprocess: private config, settings and runtime dirs; no network calls ---------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def _stop(proc: subprocess.Popen, runtime: Path) -> None:
    """SIGTERM the server (it shuts its kernels down), SIGKILL its process group if it hangs, then kill any
    kernel left behind: kernels run in their own sessions, found by the connection file in our runtime dir."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    for p in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if str(runtime).encode() in cmd:
            try:
                os.kill(int(p.name), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chromium):
    """A JupyterLab server on 127.0.0.1: yields (base url, token, root dir, log file)."""
    base = tmp_path_factory.mktemp("lab")
    root, runtime, log = base / "root", base / "runtime", base / "jupyter.log"
    root.mkdir()
    env = dict(os.environ, HOME=str(base / "home"), IPYTHONDIR=str(base / "ipython"),
               JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_DATA_DIR=str(base / "data"),
               JUPYTER_RUNTIME_DIR=str(runtime), JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"), MPLBACKEND="agg", PYTHONUNBUFFERED="1")
    env.pop("JUPYTER_PATH", None)
    # No news, update checks or PyPI listing (closed network); every cell in the DOM (no windowing).
    _write_json(base / "config" / "jupyter_server_config.json", {"LabApp": {
        "news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "extension_manager": "readonly"}})
    settings = base / "settings" / "@jupyterlab"
    _write_json(settings / "apputils-extension" / "notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})
    _write_json(settings / "notebook-extension" / "tracker.jupyterlab-settings", {"windowingMode": "none"})
    _write_json(settings / "extensionmanager-extension" / "plugin.jupyterlab-settings", {"enabled": False})

    port, token = _free_port(), uuid.uuid4().hex
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
           f"--ServerApp.root_dir={root}", "--ServerApp.terminals_enabled=False"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, token, root, log
    finally:
        _stop(proc, runtime)


@pytest.fixture
def notebook(lab, run):
    """Notebook 11 in the lab's root, its parameters set for the run (papermill injects them; nothing runs)."""
    import papermill as pm


    _, _, root, _ = lab
    path = root / "playground.ipynb"
    profile = RunDir(run).stored_config().profile
    pm.execute_notebook(str(NOTEBOOK), str(path), prepare_only=True, progress_bar=False, parameters=dict(
        profile=profile, run_dir=str(run), device="cpu", seed=0, n_images=2))
    return path


# ---- the test --------------------------------------------------------------------------------------------
SHA256_OF_IMAGE = """async (img) => {
    const buf = await (await fetch(img.src)).arrayBuffer();
    const digest = await crypto.subtle.digest('SHA-256', buf);
    return Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, '0')).join('');
}"""
ALL_CELLS_RAN = """() => {
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')];
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""
NEW_IMAGE = """(old) => {
    const img = document.querySelector('img.ulib-sample-image');
    const msg = document.querySelector('.ulib-message');
    const timing = document.querySelector('.ulib-timing');
    return img && img.src !== old && img.complete && img.naturalWidth > 0
        && msg && msg.textContent.startsWith('confidence') && timing && timing.textContent.startsWith('3 images');
}"""


def _menu(page, menu: str, item: str) -> None:
    """Click JupyterLab's menu bar entry `menu`, then the item whose label matches the regex `item`."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()


def test_generate_in_jupyterlab_shows_a_new_image(chromium, lab, notebook, tmp_path):
    from playwright.sync_api import sync_playwright

    url, token, _, log = lab
    shot, page_errors = tmp_path / "playground_browser.png", []
    with sync_playwright() as p:
        # launch() gives the browser a new empty profile (its own --user-data-dir), removed on close.
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
                                    env=dict(os.environ, HOME=str(tmp_path / "home")))
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        try:
            page.goto(f"{url}/lab/tree/{notebook.name}?token={token}")
            # Kernel connected and idle. (The toolbar's execution indicator says 'idle' before any kernel is
            # there, and Run All Cells without a kernel runs nothing.)
            page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"^(?!No Kernel).* \| Idle$")).wait_for()
            _menu(page, "Run", r"Run All Cells")
            page.wait_for_function(ALL_CELLS_RAN, timeout=2 * TIMEOUT_MS)

            # The notebook pressed Generate once itself (headless cell): an image is showing.
            img = page.locator("img.ulib-sample-image")
            img.wait_for()
            page.wait_for_function("() => document.querySelector('img.ulib-sample-image').naturalWidth > 0")
            old_src, old_sha = img.get_attribute("src"), img.evaluate(SHA256_OF_IMAGE)
            old_timing = page.locator(".ulib-timing").text_content()
            assert old_src.startswith("blob:") and re.match(r"2 images in [\d.]+ s", old_timing), old_timing

            # A user: another seed, one more image (slider, by keyboard), another decoding method, Generate.
            page.locator(".ulib-seed input").fill("7")
            page.locator(".ulib-seed input").press("Enter")
            page.locator(".ulib-images .noUi-handle").press("ArrowRight")
            page.locator(".ulib-images .widget-readout").filter(has_text=re.compile(r"^3$")).wait_for()
            page.locator(".ulib-method select").select_option("confidence")
            page.locator("button.ulib-generate").click()
            page.wait_for_function(NEW_IMAGE, arg=old_src)

            new_sha = img.evaluate(SHA256_OF_IMAGE)
            timing = page.locator(".ulib-timing").text_content()
            message = page.locator(".ulib-message").text_content()
            assert new_sha != old_sha, "Generate with other settings showed the same picture"
            assert re.fullmatch(r"3 images in [\d.]+ s \(\d+ ms/image\)", timing), timing
            assert message.startswith("confidence, "), message
            bar = page.locator(".ulib-progress .progress-bar").evaluate("e => e.style.width")
            assert bar == "100%", f"progress bar at {bar}"
            page.locator(".ulib-playground").screenshot(path=str(shot))  # scrolls the widget into view
            page.screenshot(path=str(tmp_path / "jupyterlab.png"))  # the same moment, with JupyterLab around it

            # Save and read the executed notebook back: no cell raised.
            _menu(page, "File", r"Save( Notebook)?")
            page.locator(".jp-mod-dirty").wait_for(state="detached")
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"page errors: {page_errors}\nJupyterLab log (tail):\n{log.read_text()[-4000:]}\n"
                  f"screenshot: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()

    executed = nbformat.read(notebook, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a cell did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"cells raised: {[(e.ename, e.evalue) for e in errors]}"
    views = [o for c in code for o in c.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, "the playground was not displayed as a widget"

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"screenshot of {len(data)} bytes"
    from PIL import Image

    with Image.open(shot) as im:
        assert im.width >= 300 and im.height >= 300, im.size
    if os.environ.get("ULIB_SAVE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
