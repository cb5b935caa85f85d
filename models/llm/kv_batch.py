"""The keys and values of every reply being decoded together, as one left-padded batch.

A reply joins with the cache its prompt was read into and leaves when it ends; the batch is
rebuilt only then. Between those events each decode step writes one position per row in place:
transformers' `DynamicLayer` concatenates the whole cache on every step, a copy that grows with
the batch and the context.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

# Positions reserved past the longest row whenever a buffer is (re)allocated.
HEADROOM = 64


class _GrowingLayer(DynamicLayer):
    """One layer's keys and values, written in place into a buffer that grows when full."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self.is_initialized = True
        self.device = keys.device
        self._key_buffer = keys
        self._value_buffer = values
        self._length = length
        self._expose()

    def _expose(self) -> None:
        self.keys = self._key_buffer[:, :, : self._length]
        self.values = self._value_buffer[:, :, : self._length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._length + key_states.shape[-2]
        if end > self._key_buffer.shape[-2]:
            self._key_buffer = _regrow(self._key_buffer, self._length, end + HEADROOM)
            self._value_buffer = _regrow(self._value_buffer, self._length, end + HEADROOM)
        self._key_buffer[:, :, self._length : end] = key_states
        self._value_buffer[:, :, self._length : end] = value_states
        self._length = end
        self._expose()
        return self._key_buffer[:, :, :end], self._value_buffer[:, :, :end]

    def get_seq_length(self) -> int:
        return self._length

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("rows leave a batch through BatchKV.keep")


def _regrow(buffer: torch.Tensor, length: int, capacity: int) -> torch.Tensor:
    grown = buffer.new_zeros((*buffer.shape[:2], capacity, buffer.shape[-1]))
    grown[:, :, :length] = buffer[:, :, :length]
    return grown


LayerKV = tuple[torch.Tensor, torch.Tensor]


class BatchKV:
    """Rows of key/value cache, left-padded to one length; `pads[i]` is row i's padding."""

    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.pads: list[int] = []
        self.length = 0

    def clear(self) -> None:
        self.cache, self.pads, self.length = None, [], 0

    def __len__(self) -> int:
        return len(self.pads)

    def add(self, layers: list[LayerKV]) -> None:
        """Append one row: per layer, keys and values of shape [1, heads, n, head_dim]."""
        new_length = layers[0][0].shape[-2]
        old = self._layers()
        length = max(self.length, new_length)
        shift, new_pad = length - self.length, length - new_length
        rows = len(self.pads) + 1
        built: list[_GrowingLayer] = []
        for index, (keys, values) in enumerate(layers):
            merged = []
            for tensor, which in ((keys, "_key_buffer"), (values, "_value_buffer")):
                buffer = tensor.new_zeros(
                    (rows, tensor.shape[1], length + HEADROOM, tensor.shape[-1])
                )
                if old:
                    previous = getattr(old[index], which)
                    buffer[:-1, :, shift:length] = previous[:, :, : self.length]
                buffer[-1:, :, new_pad:length] = tensor
                merged.append(buffer)
            built.append(_GrowingLayer(merged[0], merged[1], length))
        self.pads = [pad + shift for pad in self.pads] + [new_pad]
        self.length = length
        self.cache = DynamicCache()
        self.cache.layers = list(built)

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows`, in that order, and drop padding every kept row has."""
        if not rows:
            self.clear()
            return
        trim = min(self.pads[row] for row in rows)
        length = self.length - trim
        index = torch.tensor(rows, dtype=torch.long)
        built = []
        for layer in self._layers():
            buffers = []
            for buffer in (layer._key_buffer, layer._value_buffer):
                kept = buffer.new_zeros(
                    (len(rows), buffer.shape[1], length + HEADROOM, buffer.shape[-1])
                )
                kept[:, :, :length] = buffer[index.to(buffer.device), :, trim : self.length]
                buffers.append(kept)
            built.append(_GrowingLayer(buffers[0], buffers[1], length))
        self.pads = [self.pads[row] - trim for row in rows]
        self.length = length
        assert self.cache is not None
        self.cache.layers = list(built)

    def attention_mask(self, device: torch.device) -> torch.Tensor:
        """[rows, length + 1]: the cache plus the position being decoded, 0 on padding."""
        pads = torch.tensor(self.pads, device=device).unsqueeze(1)
        columns = torch.arange(self.length + 1, device=device).unsqueeze(0)
        return (columns >= pads).long()

    def sync_length(self) -> None:
        """Record the one position every row gained in the last forward pass."""
        self.length += 1

    def _layers(self) -> list[_GrowingLayer]:
        if self.cache is None:
            return []
        return [layer for layer in self.cache.layers if isinstance(layer, _GrowingLayer)]
