"""Runs that hold (#21): one writer per run, config.json written only when a stage commits, overrides checked
against the checkpoints first, a config.json that lacks keys, evaluation.jsonl that one bad line cannot block."""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from ulib.app.cli import main
from ulib.eval import records as R
from ulib.io.checkpoint import load_checkpoint
from ulib.io.logs import MetricsLog
from ulib.io.rundir import HELD_ENV, RunDir, RunLocked

from helpers import ROOT, run_cli, tiny_sets

pytestmark = pytest.mark.slow



def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder):
    """{relative path: sha256} of every file under `folder` but the lock's note of its holder (what 'no file
    changed' compares)."""
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != ".lock"}


@pytest.fixture(scope="module")
def half_run(tmp_path_factory):
    """A smoke run whose VQGAN is trained and whose prior stopped at step 3 of 6 (an unfinished checkpoint)."""
    run = tmp_path_factory.mktemp("integrity") / "run"
    assert main(["train-vqgan", "--run", str(run), "--profile", "smoke", *tiny_sets(), "--no-progress"]) == 0
    assert main(["train-prior", "--run", str(run), *tiny_sets(), "--stop-at", "3", "--no-progress"]) == 0
    assert load_checkpoint(run / "prior.pt")["step"] == 3
    return run


HOLDER = textwrap.dedent("""
    import sys, time
    from ulib.io.rundir import RunDir
    with RunDir(sys.argv[1]).lock("the test's holder"):
        print("held", flush=True)
        time.sleep(120)
""")


def hold(run):
    """A process that holds `run`'s lock until killed (started once it holds it)."""
    env = {k: v for k, v in os.environ.items() if k != HELD_ENV}
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                         env=env)
    assert p.stdout.readline().strip() == "held"
    return p


# ---- one writer per run (item 4) -------------------------------------------------------------------
def test_lock_refuses_a_second_writer_and_dies_with_its_holder(tmp_path):
    run = RunDir(tmp_path / "run")
    p = hold(run.path)
    try:
        with pytest.raises(RunLocked, match=rf"in use by pid {p.pid} .*the test's holder"):
            with run.lock():
                pass
    finally:
        p.kill()
        p.wait()
    with run.lock():  # killed, not released: the system dropped the lock with the process
        with run.lock():  # re-entrant within one process
            assert os.environ[HELD_ENV].endswith(str(run.path.resolve()))
    assert HELD_ENV not in os.environ


def test_processes_started_by_the_holder_write_under_its_lock(tmp_path):
    """`reproduce` holds the run; the notebook kernels it starts train into it (they inherit the lock)."""
    run = RunDir(tmp_path / "run")
    child = "import sys; from ulib.io.rundir import RunDir\nwith RunDir(sys.argv[1]).lock(): print('child wrote')"
    with run.lock():
        r = subprocess.run([sys.executable, "-c", child, str(run.path)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "child wrote" in r.stdout, r.stderr


@pytest.mark.parametrize("argv", [
    ["train-prior", "--resume"], ["train-vqgan", "--force"], ["encode"], ["pipeline"], ["elbo", "--mc", "1"],
    ["sample", "--n", "1", "--steps", "2"],
    ["evaluate", "--samples", "8", "--features", "random-inception", "--max-reference", "8"],
])
def test_every_writing_command_refuses_a_run_in_use(half_run, argv, capsys):
    before = snapshot(half_run)
    p = hold(half_run)
    try:
        code = main([argv[0], "--run", str(half_run), *argv[1:]])
    finally:
        p.kill()
        p.wait()
    err = capsys.readouterr().err
    assert code == 2 and f"is in use by pid {p.pid}" in err and "Traceback" not in err, err
    assert snapshot(half_run) == before


def test_sampling_into_a_file_elsewhere_may_read_a_run_in_use(half_run, tmp_path):
    p = hold(half_run)
    try:
        code = main(["sample", "--run", str(half_run), "--n", "1", "--steps", "2", "--png", str(tmp_path / "s.png")])
    finally:
        p.kill()
        p.wait()
    assert code == 0 and (tmp_path / "s.png").is_file()


def test_two_trainings_started_together_leave_one_clean_log(half_run, tmp_path):
    """The report: two `train-prior` a second apart on one run both exited 0 and doubled every log row."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "vqgan.pt", "latents.pt"):
        (run / name).write_bytes((half_run / name).read_bytes())
    args = ("train-prior", "--run", str(run), "--no-progress", "--set", "prior_train.steps=300",
            "--set", "prior_train.log_every=10", "--set", "prior_train.image_every=1000",
            "--set", "prior_train.ckpt_every=1000")
    env = {k: v for k, v in os.environ.items() if k != HELD_ENV}
    first = subprocess.Popen([sys.executable, "-m", "ulib", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / ".lock").is_file() or not (run / ".lock").read_text():  # the first one holds the run
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.05)
    second = run_cli(*args, env={HELD_ENV: ""})
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert second.returncode == 2 and f"in use by pid {first.pid}" in second.stderr, second.stderr
    steps = [r["step"] for r in MetricsLog.read(run / "metrics_prior.csv")]
    assert steps == list(range(10, 301, 10)), steps


# ---- config.json written when the stage commits; overrides checked first (item 3) --------------------
def test_a_bad_set_on_resume_is_refused_and_stores_nothing(half_run, capsys):
    config = (half_run / "config.json").read_bytes()
    before = snapshot(half_run)
    code = main(["train-prior", "--run", str(half_run), "--resume", "--set", "prior.n_layers=3", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "cannot be resumed" in err and "prior.n_layers=" in err and "3 now" in err and "Traceback" not in err
    assert (half_run / "config.json").read_bytes() == config and snapshot(half_run) == before
    # the run is not poisoned: a plain sample still works (the prior at step 3)
    assert main(["sample", "--run", str(half_run), "--n", "1", "--steps", "2", "--png",
                 str(half_run.parent / "after.png")]) == 0


def test_a_set_that_disagrees_with_the_vqgan_is_refused_before_training(half_run, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "vqgan.pt"):
        (run / name).write_bytes((half_run / name).read_bytes())
    before = snapshot(run)
    assert main(["train-prior", "--run", str(run), "--set", "vqgan.emb_dim=8", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "disagree with the run's VQGAN" in err and "vqgan.emb_dim=" in err, err
    assert snapshot(run) == before


def test_a_first_run_with_a_wrong_data_folder_stores_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    missing = tmp_path / "no_such_folder"
    assert main(["train-vqgan", "--run", str(run), "--profile", "demo", "--data", str(missing), *tiny_sets(),
                 "--no-progress"]) == 2
    assert "no_such_folder" in capsys.readouterr().err
    assert not (run / "config.json").exists()
    # the corrected command (another profile, the built-in data) is not refused by what the failed one stored
    assert main(["train-vqgan", "--run", str(run), "--profile", "smoke", *tiny_sets(["vqgan_train.steps=1"]),
                 "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["profile"] == "smoke"


# ---- a key missing from config.json (item 6) -----------------------------------------------------------
def test_a_key_missing_from_config_json_comes_from_the_checkpoint(half_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("vqgan.pt", "prior.pt"):
        (run / name).write_bytes((half_run / name).read_bytes())
    d = json.loads((half_run / "config.json").read_text())
    trained_t = d["prior"].pop("total_steps")
    del d["sample"]["temperature"]
    assert trained_t != 64  # the default it would silently have taken
    (run / "config.json").write_text(json.dumps(d))
    with pytest.warns(UserWarning, match=rf"lacks 2 key\(s\).*prior.total_steps={trained_t} from prior.pt"):
        cfg = RunDir(run).stored_config()
    assert cfg.prior.total_steps == trained_t
    assert cfg.sample.temperature == load_checkpoint(run / "vqgan.pt")["config"]["sample"]["temperature"]


# ---- evaluation.jsonl (item 5) -------------------------------------------------------------------------
def _record(fid):
    return {"kind": "vqgan", "features": "openmoji", "time": "t", "vqgan_step": 1, "ema": True, "reference": "val",
            "n_images": 4, "rfid": fid, "psnr": 1.0, "ssim": 0.5, "lpips": None, "codes_used": 3,
            "codebook_size": 8, "perplexity": 2.0}


def test_one_broken_line_does_not_block_later_evaluations(tmp_path):
    jsonl = tmp_path / "evaluation.jsonl"
    jsonl.write_text(json.dumps(_record(1.0)) + "\n" + json.dumps(_record(2.0))[:25])  # a write cut short
    with pytest.warns(UserWarning, match="line 2: not a JSON record"):
        R.record_evaluation(tmp_path, _record(3.0))
    with pytest.warns(UserWarning, match="line 2"):
        assert [r["rfid"] for r in R.read_records(jsonl)] == [1.0, 3.0]


def test_a_failed_record_write_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    R.record_evaluation(tmp_path, _record(1.0))
    jsonl = tmp_path / "evaluation.jsonl"
    before = jsonl.read_bytes()
    real = R.atomic_write

    def disk_full(path, write):
        def half(f):
            write(f)
            raise OSError(28, "No space left on device")
        real(path, half)

    monkeypatch.setattr(R, "atomic_write", disk_full)
    with pytest.raises(OSError, match="(?i)no space left"):
        R.record_evaluation(tmp_path, _record(2.0))
    assert jsonl.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_taking_the_lock_removes_what_killed_writes_left(tmp_path):
    run = RunDir(tmp_path / "run")
    run.images.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has ended
    stale = [run.path / f".prior.pt.{pid}-0badc0de.tmp", run.images / f".grid.png.{pid}-0badc0de.tmp"]
    live = run.path / f".samples.png.{os.getpid()}-12345678.tmp"
    for p in [*stale, live, run.path / "prior.pt"]:
        p.write_bytes(b"x")
    with run.lock():
        pass
    assert not any(p.exists() for p in stale)
    assert live.exists() and (run.path / "prior.pt").exists()


def test_a_command_that_wrote_nothing_leaves_no_run_folder(tmp_path):
    run = RunDir(tmp_path / "new" / "run")
    with pytest.raises(RuntimeError):
        with run.lock():
            raise RuntimeError("failed before writing anything")
    assert not (tmp_path / "new").exists()
    with run.lock():
        (run.path / "config.json").write_text("{}")
    assert sorted(p.name for p in run.path.iterdir()) == [".lock", "config.json"]
