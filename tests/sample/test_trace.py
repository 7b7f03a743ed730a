"""What a sampling run did, step by step (`ulib.sample.trace`): the step trace and the reveal map by hand, the
entropy by hand, and the probe on real samplers of the registry."""
import math

import pytest
import torch

from ulib.sample import registry
from ulib.sample.api import sample_tokens
from ulib.sample.base import SampleStep
from ulib.sample.trace import EntropyProbe, StepTrace, entropy, reveal_map, step_entropies

from helpers import CountModel, gen


def step(x, written, ran=True):
    return SampleStep(torch.tensor(x), torch.tensor(written, dtype=torch.bool), ran_network=ran)


def test_the_trace_by_hand():
    trace = StepTrace(torch.full((2, 4), 9), keep_states=True)
    trace(0, step([[1, 2, 9, 9], [9, 9, 9, 9]], [[1, 1, 0, 0], [0, 0, 0, 0]]))
    trace(1, step([[1, 2, 9, 9], [9, 9, 9, 9]], [[0, 0, 0, 0], [0, 0, 0, 0]], ran=False))
    trace(2, step([[3, 2, 0, 9], [9, 4, 9, 9]], [[1, 0, 1, 0], [0, 1, 0, 0]]))  # position 0 re-written
    assert trace.first.tolist() == [[0, 0, 2, -1], [-1, 2, -1, -1]]  # the FIRST write; -1: never written
    assert trace.last.tolist() == [[2, 0, 2, -1], [-1, 2, -1, -1]]  # the last: position 0 re-written at step 2
    assert trace.calls.tolist() == [2, 1]  # image 1 had nothing written in step 0's call
    assert trace.passes == 2 and trace.ran == [True, False, True]
    assert [w.tolist() for w in trace.written] == [[2, 0], [0, 0], [2, 1]]
    assert len(trace.states) == 4 and trace.states[0].eq(9).all() and trace.states[3][0].tolist() == [3, 2, 0, 9]


def test_states_are_copies_not_views_of_a_tensor_the_sampler_reuses():
    x = torch.zeros(1, 3, dtype=torch.long)
    trace = StepTrace(x, keep_states=True)
    x[0, 0] = 5  # a sampler writing into its state in place
    trace(0, SampleStep(x, torch.tensor([[True, False, False]])))
    x[0, 1] = 6
    trace(1, SampleStep(x, torch.tensor([[False, True, False]])))
    assert [s.tolist() for s in trace.states] == [[[0, 0, 0]], [[5, 0, 0]], [[5, 6, 0]]]


def test_reveal_map_by_hand():
    first = torch.tensor([[0, 2, -1, 1], [2, 2, -1, 3]])  # two images of a 2 x 2 grid
    out = reveal_map(first, (2, 2))
    assert out[0].tolist() == [1.0, 2.0]
    assert math.isnan(out[1, 0]) and out[1, 1] == 2.0  # given in both images: NaN; else the mean
    steps = torch.tensor([[0, 1, -1, 3], [2, 1, 0, 1]])  # given in one image only: the other image's step
    assert reveal_map(steps, (2, 2)).tolist() == [[1.0, 1.0], [0.0, 2.0]]


def test_entropy_by_hand():
    assert entropy(torch.zeros(4)).item() == pytest.approx(math.log(4))
    # logits (0, ln 3): p = (1/4, 3/4), H = -(1/4 ln 1/4 + 3/4 ln 3/4) = ln 4 - (3/4) ln 3
    two = torch.tensor([0.0, math.log(3)], dtype=torch.float64)
    assert entropy(two).item() == pytest.approx(math.log(4) - 0.75 * math.log(3), abs=1e-12)
    # temperature 2 halves the logits: (0, ln 3 / 2), p = (1, sqrt 3) / (1 + sqrt 3)
    p = torch.tensor([1.0, math.sqrt(3)], dtype=torch.float64) / (1 + math.sqrt(3))
    assert entropy(two, 2.0).item() == pytest.approx(-(p * p.log()).sum().item(), abs=1e-12)
    assert entropy(torch.tensor([0.0, 1e4])).item() == pytest.approx(0.0, abs=1e-12)  # no NaN at p = 0


def test_the_probe_passes_logits_through_and_records_masked_positions_only():
    net = CountModel(K=3, L=4)
    probe = EntropyProbe(net, mask_id=3, temperature=0.5)
    x = torch.tensor([[3, 0, 3, 1]])
    out = probe(x)
    assert torch.equal(out, net(x))
    (h,) = probe.per_call
    assert torch.isnan(h[0, [1, 3]]).all()
    assert h[0, [0, 2]].tolist() == pytest.approx(entropy(net(x)[0, [0, 2]], 0.5).tolist())


@pytest.mark.parametrize("method", registry.choices())
def test_every_method_traced_with_its_entropy(method):
    """Each registered method through the front door with the probe as its network: the trace's states end at the
    tokens returned; one row per step, with the entropy of the network's distributions at the positions masked in
    what the network was shown (the state before the step, with positions re-masked by 'remask' and 'remdm')."""
    K, L, T = 5, 12, 12
    net = CountModel(K, L, seed=1)
    probe = EntropyProbe(net, mask_id=K, temperature=0.8)
    trace = StepTrace(torch.full((1, L), K), keep_states=True, probe=probe)
    tokens = sample_tokens(probe, 1, method=method, steps=6, temperature=0.8, num_timesteps=T, mask_id=K,
                           grid=(3, 4), generator=gen(0), callback=trace)
    assert torch.equal(trace.states[-1].view(1, 3, 4), tokens)
    assert trace.passes == len(probe.per_call) == net.calls == sum(trace.ran)
    assert (trace.first >= 0).all() and (trace.last >= trace.first).all()  # all written from an all-masked start
    for k, step in enumerate(trace.steps):  # the last write is the token kept: no later step wrote the position
        assert not (step.unmasked.reshape(1, -1) & (trace.last < k)).any()
    rows = step_entropies(trace)
    assert len(rows) == len(trace.steps) == len(trace.states) - 1
    shown = iter(torch.tensor(net.rows)[:, None])  # what the network saw, (1, L) per call
    for row, x_before, ran in zip(rows, trace.states, trace.ran):
        if not ran:
            assert row["masked"] is None and row["n_masked"] == 0
            continue
        x = next(shown)
        masked = x[0] == K
        assert (masked | (x_before[0] != K)).all()  # every position masked before the step was masked when shown
        want = entropy(net(x)[0, masked], 0.8).mean().item()
        assert row["masked"] == pytest.approx(want, abs=1e-9) and row["n_masked"] == int(masked.sum())
        assert 0 <= row["n_written"] <= row["n_masked"]


def test_step_entropies_needs_the_probe_and_the_states():
    trace = StepTrace(torch.zeros(1, 2), keep_states=False)
    with pytest.raises(ValueError, match="keep_states=True, probe="):
        step_entropies(trace)
