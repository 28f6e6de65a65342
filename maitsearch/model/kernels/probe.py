"""Memory probes for kernels: which tensors a computation creates and keeps.

``TensorProbe`` is a TorchDispatchMode that sees every aten op's outputs, so a test can prove that
a kernel never builds an N x N tensor, and a benchmark can report the largest tensor and the bytes
autograd saves for backward on a CPU, where PyTorch keeps no allocator peak statistics.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class TensorProbe(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[str, tuple[int, ...]]] = []
        self.saved_bytes = 0
        self._hooks = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.shapes.append((str(func), tuple(value.shape)))
        return out

    def __enter__(self):
        seen: set[int] = set()

        def pack(tensor):
            storage = tensor.untyped_storage()  # views share one storage: count it once
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                self.saved_bytes += storage.nbytes()
            return tensor

        self._hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)
        self._hooks.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        result = super().__exit__(*exc)
        self._hooks.__exit__(*exc)
        return result

    def largest(self) -> int:
        return max((_numel(shape) for _, shape in self.shapes), default=0)

    def quadratic(self, n: int) -> list[tuple[str, tuple[int, ...]]]:
        """Tensors with two or more dimensions of size >= n: the signature of an N x N matrix."""
        return [(op, shape) for op, shape in self.shapes if sum(size >= n for size in shape) >= 2]


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for size in shape:
        out *= size
    return out
