"""The global batch (ulib/train/batch_plan.py): processes x accumulation x micro-batch, and the errors when the
numbers do not divide. Accumulation against one big batch, in whole runs: tests/train/test_scale_training.py."""
import pytest

from ulib.profiles import get_profile
from ulib.train.batch_plan import batch_plan


def test_batch_plan_and_its_errors():
    p = batch_plan(20, 5, 2, "prior_train")
    assert (p.global_batch, p.processes, p.micro_batch, p.accumulation, p.per_process) == (20, 2, 5, 2, 10)
    assert batch_plan(20, 0, 4, "x").accumulation == 1
    with pytest.raises(ValueError, match="prior_train.batch_size=20 is the global batch.*3 processes"):
        batch_plan(20, 0, 3, "prior_train")
    with pytest.raises(ValueError, match=r"micro_batch=4 must divide the per-process batch 10"):
        batch_plan(20, 4, 2, "prior_train")
    with pytest.raises(ValueError, match="micro_batch=3 must divide prior_train.batch_size=20"):
        get_profile("smoke", ["prior_train.batch_size=20", "prior_train.micro_batch=3"])
