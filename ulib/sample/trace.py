"""What a sampling run did, step by step: for the decoding lab's frontier and the playground's Steps tab.

Two pieces, both usable with any method of `ulib.sample.registry`, since they see only the protocol
(`ulib.sample.base`):

- `StepTrace`, a `callback(k, SampleStep)`: per image, the network calls in which one of its positions was written
  (c_b = sum_k [ran_k and any_i written_k[b, i]]), the forward passes of the batch, the step at which each position
  was first written and the step at which it was last written (the reveal order; the same for methods that write a
  position once; for re-masking methods the last write is the token kept; -1 for a position given at the start or
  never written), and optionally every state x_0..x_S.
- `EntropyProbe`, a network wrapper: net(x) -> logits as before, and for every call the entropy (nats) of the
  distribution each masked position is drawn from, softmax(logits / temperature):
      H_i = -sum_j p_ij log p_ij,   p_i = softmax(l_i / tau)
  (the EB-sampler's quantity, Ben-Hamu et al. 2025). It asks the network for all positions, so the head's
  only-where-needed shortcut (`ulib.sample.network.logits_at`) is off while it is on: for showing, not timing.
"""
from __future__ import annotations

import numpy as np
import torch


class StepTrace:
    """Records what each step of one batch wrote (the callback of `sample_tokens`, `Sampler.sample`)."""

    def __init__(self, x_start: torch.Tensor, keep_states: bool = False, probe: "EntropyProbe | None" = None):
        """x_start: the start state (B, ...) (only its shape is read, and kept as state 0 when keep_states);
        probe: the `EntropyProbe` the sampler's network is wrapped in, whose calls are then matched to steps."""
        b = x_start.shape[0]
        self.probe, self.call_marks = probe, []  # per step: the probe's calls made up to its end
        self.calls = torch.zeros(b, dtype=torch.long)  # network calls that wrote a position of the image
        self.first = torch.full((b, x_start[0].numel()), -1, dtype=torch.long)  # (B, L): step of the first write
        self.last = self.first.clone()  # (B, L): step of the last write
        self.passes = 0  # forward passes of the batch
        self.ran: list[bool] = []  # per step: did the network run
        self.written: list[torch.Tensor] = []  # per step: (B,) positions written
        self.states = [x_start.detach().cpu().clone()] if keep_states else None
        self.steps: list = []  # the SampleSteps, when keep_states

    def __call__(self, k: int, step) -> None:
        written = step.unmasked.reshape(step.unmasked.shape[0], -1).cpu()  # (B, L)
        self.ran.append(bool(step.ran_network))
        if self.probe is not None:
            self.call_marks.append(len(self.probe.per_call))
        self.written.append(written.sum(1))
        self.last = torch.where(written, torch.full_like(self.last, k), self.last)
        if self.states is not None:
            self.states.append(step.x.detach().cpu().clone())
            self.steps.append(step)
        if not step.ran_network:
            return
        self.passes += 1
        self.calls += written.any(1).long()
        self.first = torch.where((self.first < 0) & written, torch.full_like(self.first, k), self.first)


def reveal_map(steps: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """(h, w) mean over the images of `steps` (B, L), the step at which each position was written (`StepTrace.first`
    or `.last`); -1, a given position, is left out; NaN where no image wrote it."""
    r = steps.double().reshape(len(steps), -1)
    r[r < 0] = float("nan")
    counted = (~torch.isnan(r)).sum(0)
    mean = torch.where(counted > 0, torch.nan_to_num(r).sum(0) / counted.clamp(min=1), torch.nan)
    return mean.numpy().reshape(grid)


def entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """H = -sum_j p_j log p_j (nats) of p = softmax(logits / temperature) over the last axis, in float64."""
    logp = torch.log_softmax(logits.double() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


class EntropyProbe:
    """net(x) -> logits, recording per call the entropy of each masked position's distribution ((B, L) float64,
    NaN where x was not masked) in `per_call`."""

    def __init__(self, net, mask_id: int, temperature: float = 1.0):
        self.net, self.mask_id, self.temperature = net, mask_id, temperature
        self.per_call: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)  # (B, L, K)
        h = entropy(logits.detach(), self.temperature).cpu()  # (B, L)
        self.per_call.append(torch.where((x == self.mask_id).cpu(), h, torch.nan))
        return logits

    def parameters(self):  # where start grids are made (ulib.sample.network.network_device)
        params = getattr(self.net, "parameters", None)
        return params() if callable(params) else iter(())


def step_entropies(trace: StepTrace, image: int = 0) -> list[dict]:
    """Per step of a run traced with keep_states and a probe: the mean entropy (nats) over the positions still
    masked when the step's first network call ran, and over those of them the step wrote, for image `image`; None
    where the step made no call. n_masked / n_written: how many positions each mean is over."""
    if trace.probe is None or not trace.steps:
        raise ValueError("step_entropies needs StepTrace(x, keep_states=True, probe=EntropyProbe(...))")
    out, before = [], 0
    for k, (mark, step) in enumerate(zip(trace.call_marks, trace.steps)):
        row = {"step": k, "masked": None, "written": None, "n_masked": 0, "n_written": 0}
        if mark > before:
            h = trace.probe.per_call[before][image]  # (L,): NaN where not masked
            masked = ~torch.isnan(h)
            wrote = masked & step.unmasked.reshape(step.unmasked.shape[0], -1)[image].cpu()
            row.update(masked=h[masked].mean().item() if masked.any() else None, n_masked=int(masked.sum()),
                       written=h[wrote].mean().item() if wrote.any() else None, n_written=int(wrote.sum()))
        out.append(row)
        before = mark
    return out
