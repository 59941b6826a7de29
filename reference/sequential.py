"""``Sequential``: a chain of reference layers addressed by torch ``state_dict`` keys."""

from __future__ import annotations

import numpy as np
from parity.reference.layers import Layer


class Sequential:
    """``out = layers[-1](… layers[0](x))``; backward runs the chain in reverse.

    Parameters and buffers are addressed as ``"{index}.{name}"`` (``"0.weight"``,
    ``"3.running_var"``) — the keys of the torch twin's ``state_dict``. Arrays keep the
    reference layout (Linear weight ``(in, out)``); ``parity.transfer`` converts.
    """

    def __init__(self, *layers: Layer) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: item {i} is {type(layer).__name__}, not a Layer")
            layer.name = f"{type(layer).__name__} (layer {i})"
        self.layers = list(layers)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    __call__ = forward

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate ``dout = dL/d(output)``; fills every layer's ``grads``; returns dL/dx.

        ``input_grad=False`` (a training step, which never reads dL/dx) skips the first layer's
        input gradient (a Linear's ``dout @ W.T``) and returns None; every ``grads`` is the same.
        """
        if input_grad or not self.layers:
            for layer in reversed(self.layers):
                dout = layer.backward(dout)
            return dout
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout)
        self.layers[0].backward_params(dout)
        return None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Eval-mode forward (dropout off, BatchNorm on running statistics)."""
        return self.forward(x, training=False)

    def parameters(self) -> dict[str, np.ndarray]:
        """Trainable arrays by state_dict key (live references: optimizers update in place)."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.params.items()}

    def gradients(self) -> dict[str, np.ndarray]:
        """Gradients of the last ``backward``, same keys as ``parameters()``."""
        out = {}
        for i, layer in enumerate(self.layers):
            for k in layer.params:
                if k not in layer.grads:
                    raise RuntimeError(f"no gradient for {i}.{k}: call backward first")
                out[f"{i}.{k}"] = layer.grads[k]
        return out

    def buffers(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.buffers.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of parameters and buffers, in state_dict order (per layer: params, buffers)."""
        out = {}
        for i, layer in enumerate(self.layers):
            for k, v in {**layer.params, **layer.buffers}.items():
                out[f"{i}.{k}"] = v.copy()
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays in (strict: same keys, shapes and dtypes; nothing changes on error)."""
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for k, v in state.items():
            v = np.asarray(v)
            if v.shape != own[k].shape or v.dtype != own[k].dtype:
                raise ValueError(
                    f"load_state_dict: {k} expected {own[k].dtype} {own[k].shape}, "
                    f"got {v.dtype} {v.shape}"
                )
        for i, layer in enumerate(self.layers):
            for k in layer.params:
                layer.params[k][...] = state[f"{i}.{k}"]
            for k in layer.buffers:
                layer.buffers[k] = np.array(state[f"{i}.{k}"], copy=True)

    def num_parameters(self) -> int:
        return int(sum(v.size for v in self.parameters().values()))

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(repr(layer) for layer in self.layers) + ")"
