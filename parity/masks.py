"""Share dropout masks: record the exact keep-mask each torch ``nn.Dropout`` (or
``nn.Dropout2d``) drew, so the NumPy twin can drop the same units
(``reference.Dropout.queue_masks``). Which modules draw masks, and how to replay a draw, is
their kind's record's to say (``LayerKind.draws_masks``, ``replay_keep_mask``)."""

from __future__ import annotations

import torch
from torch import nn

from parity import kinds


class DropoutMaskRecorder:
    """Forward hooks on every mask-drawing module (``nn.Dropout``) of a Sequential. Before
    the module runs, the CPU RNG state is saved; afterwards the draw is replayed on a tensor
    of ones from that state by the kind's record (``replay_keep_mask``: same shape → same
    Bernoulli draw on torch's CPU path), and the
    RNG is put back where the real forward left it. ``masks[i]`` lists boolean keep-masks of
    layer ``i``, oldest first."""

    def __init__(self, model: nn.Sequential) -> None:
        self.masks: dict[int, list] = {}
        self._handles = []
        for i, m in enumerate(model):
            kind = kinds.of_module(m, exact=False)
            if kind is not None and kind.draws_masks:
                self.masks[i] = []
                self._handles.append(m.register_forward_pre_hook(self._pre))
                self._handles.append(m.register_forward_hook(self._make_post(i, kind)))

    def _pre(self, module, inputs):
        module._parity_rng_state = torch.get_rng_state()

    def _make_post(self, index: int, kind: kinds.LayerKind):
        def post(module, inputs, output):
            if not module.training or module.p == 0:
                return
            after = torch.get_rng_state()
            torch.set_rng_state(module._parity_rng_state)
            with torch.no_grad():
                keep = kind.replay_keep_mask(module, inputs[0])
            torch.set_rng_state(after)
            self.masks[index].append(keep.cpu().numpy())
        return post

    def take(self) -> dict[int, list]:
        """Masks recorded since the last call, per layer index; clears them."""
        out = {i: list(v) for i, v in self.masks.items()}
        for v in self.masks.values():
            v.clear()
        return out

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
