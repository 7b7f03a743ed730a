"""Where the data caches live (rendered OpenMoji, LSUN keys, image-folder verdicts), whatever folder a command
runs in.

A relative `data.cache_dir` (default "data/cache") is taken relative to the checkout that holds ulib (the folder
with pyproject.toml), so a notebook running in notebooks/, a CLI run from runs/x or a script elsewhere all share
the checkout's data/cache/ instead of each rendering its own; where ulib is installed without a checkout, it is
taken relative to the user's cache folder ($XDG_CACHE_HOME/ulib, else ~/.cache/ulib). An absolute cache_dir is
used as given.
"""
from __future__ import annotations

import os
from pathlib import Path

from ulib.io.files import remove_stale_temporaries

_CHECKOUT = Path(__file__).resolve().parents[2]  # ulib/data/cache.py -> the folder holding ulib/


def cache_base() -> Path:
    """The folder a relative cache_dir starts from: the checkout holding ulib, else the user's cache folder."""
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "ulib").is_dir():
        return _CHECKOUT
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ulib"


def resolve_cache_dir(cache_dir: str | os.PathLike) -> Path:
    """`cache_dir` as an absolute path that does not depend on the current working directory."""
    path = Path(cache_dir).expanduser()
    return path if path.is_absolute() else cache_base() / path


def before_writing(folder: str | os.PathLike) -> None:
    """Clear what killed writers left in a cache folder (their .NAME.PID-HEX.tmp files) before adding to it."""
    try:
        remove_stale_temporaries(folder)
    except OSError:
        pass  # an unreadable cache folder: the write that follows says what is wrong
