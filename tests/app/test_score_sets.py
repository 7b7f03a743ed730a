"""measuring.score_sets: image sets of one n scored side by side beside the floor at that n, recorded as a table and a
picture (notebooks 08 and 09)."""
import pytest
import torch

from ulib.app import measuring
from ulib.app.results import read_table
from ulib.app.session import Session


class StubMeter:
    """score: the set's mean pixel value as 'fid'; floor: a fixed row at n (records the n it was asked for)."""

    def __init__(self):
        self.floor_n = []

    def score(self, x, *, draws, seed):
        return {"n": len(x), "fid": x.float().mean().item(), "fid_std": 0.5, "kid": 0.0, "precision": 1.0,
                "recall": 1.0, "density": 1.0, "coverage": 1.0}

    def floor(self, n, *, draws, seed):
        self.floor_n.append(n)
        return {"n": n, "fid": 1.0, "kid": 0.0, "precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def _session(tmp_path):
    return Session(run=None, cfg=None, device=torch.device("cpu"), seed=0, results=tmp_path)


def test_score_sets_rows_table_and_picture(tmp_path):
    s, meter = _session(tmp_path), StubMeter()
    sets = {"dark": torch.zeros(10, 3, 4, 4, dtype=torch.uint8),
            "light": torch.full((10, 3, 4, 4), 200, dtype=torch.uint8)}
    rows = measuring.score_sets(s, meter, sets, 3, "t", "p", mask="centre")
    assert meter.floor_n == [10]
    assert [(r["set"], r["mask"], r["fid"], r["floor_fid"]) for r in rows] == [("dark", "centre", 0.0, 1.0),
                                                                               ("light", "centre", 200.0, 1.0)]
    table = read_table(tmp_path / "t.csv")
    assert list(table[0])[:3] == ["set", "mask", "n"] and [r["set"] for r in table] == ["dark", "light"]
    assert (tmp_path / "p.png").stat().st_size > 0


def test_score_sets_needs_one_n(tmp_path):
    sets = {"a": torch.zeros(10, 3, 4, 4, dtype=torch.uint8), "b": torch.zeros(9, 3, 4, 4, dtype=torch.uint8)}
    with pytest.raises(ValueError, match="different sizes"):
        measuring.score_sets(_session(tmp_path), StubMeter(), sets, 3, "t", "p")
