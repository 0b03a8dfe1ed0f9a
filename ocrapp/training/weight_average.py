"""An exponential moving average of a model's weights, kept beside the training (Polyak averaging).

After every optimizer step ``avg = decay * avg + (1 - decay) * weights``. The average starts at the weights the
run starts from, so a fine-tune's average leans on its initial weights early on: with decay ``d`` the start still
weighs ``d ** steps`` (0.998 over 600 steps: 0.30), the soup of the start and the fine-tune that the project
otherwise builds by hand (``training.average``). Integer buffers are copied, not averaged.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the decay of a weight average lies between 0 and 1, not {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        floats, targets = [], []
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                floats.append(self.shadow[name])
                targets.append(value.detach().float())
            else:
                self.shadow[name].copy_(value)
        torch._foreach_lerp_(floats, targets, 1.0 - self.decay)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise RuntimeError("the saved weight average does not fit this model")
        self.decay, self.updates = state["decay"], state["updates"]
        self.shadow = {k: v.float().clone() for k, v in state["shadow"].items()}

    def weights_for(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The averaged weights in the dtypes of ``model``'s own state."""
        return {k: self.shadow[k].to(v.dtype) for k, v in model.state_dict().items()}

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """``model`` carries the averaged weights inside the block and its own again after it."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.weights_for(model))
        try:
            yield
        finally:
            model.load_state_dict(own)
