"""The KV cache of batched caption decoding: preallocated, written in place.

A cache that grows by `torch.cat` at every step copies the whole cache per generated token, and
reordering beams with `index_select` into a fresh tensor is a second copy and an allocation per
step. On a GPU these copies move as many bytes as the attention reads, and every allocation goes
through the caching allocator. Here each layer owns a buffer of (B, heads, capacity, head_dim)
sized for prefix + max_tokens up front: a new token is one slice write, the layer's keys/values
are views of the first `length` positions, and a beam reorder gathers into a second buffer of the
same size (index_select with out=) and swaps the two, so steady-state decoding allocates nothing.
Batch shrinking (finished captions leave) copies only the filled positions of the kept rows.
"""

from __future__ import annotations

import torch


class LayerCache:
    """One layer's keys and values in a preallocated buffer (see module docstring)."""

    def __init__(self, capacity: int = 0):
        self.capacity = capacity  # positions to allocate (grows by doubling if exceeded)
        self._k: torch.Tensor | None = None  # (B, H, capacity, d)
        self._v: torch.Tensor | None = None
        self._spare: tuple[torch.Tensor, torch.Tensor] | None = None  # reorder target
        self._len = 0
        self.keys: torch.Tensor | None = None  # (B, H, length, d): views of the buffers
        self.values: torch.Tensor | None = None

    def _views(self) -> None:
        self.keys = self._k[:, :, : self._len]
        self.values = self._v[:, :, : self._len]

    def _alloc(self, like_k: torch.Tensor, like_v: torch.Tensor, rows: int, cap: int) -> None:
        kb, vb = self._k, self._v
        h, dk, dv = like_k.shape[1], like_k.shape[-1], like_v.shape[-1]
        self._k = like_k.new_empty(rows, h, cap, dk)
        self._v = like_v.new_empty(rows, h, cap, dv)
        self._spare = None
        if kb is not None and self._len:
            self._k[:, :, : self._len] = kb[:, :, : self._len]
            self._v[:, :, : self._len] = vb[:, :, : self._len]

    def update(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (B, H, n, d) keys and values; returns all cached ones, (B, H, length, d)."""
        n = keys.shape[-2]
        if self._k is None:
            self._alloc(keys, values, keys.shape[0], max(self.capacity, n))
        elif self._len + n > self._k.shape[-2]:
            self._alloc(self._k, self._v, self._k.shape[0], 2 * (self._len + n))
        self._k[:, :, self._len : self._len + n] = keys
        self._v[:, :, self._len : self._len + n] = values
        self._len += n
        self._views()
        return self.keys, self.values

    def seq_length(self) -> int:
        return self._len

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        """Row i becomes old row beam_idx[i] (same batch size), gathered into the spare buffer."""
        if not self._len:
            return
        if self._spare is None:
            self._spare = (torch.empty_like(self._k), torch.empty_like(self._v))
        sk, sv = self._spare
        idx = beam_idx.to(self._k.device)
        torch.index_select(self.keys, 0, idx, out=sk[:, :, : self._len])
        torch.index_select(self.values, 0, idx, out=sv[:, :, : self._len])
        self._spare = (self._k, self._v)
        self._k, self._v = sk, sv
        self._views()

    def _rebuild(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """New buffers holding `keys`/`values` (B', H, length, d) for a changed batch."""
        cap = self._k.shape[-2]
        self._k = self._v = None
        self._alloc(keys, values, keys.shape[0], cap)
        self._k[:, :, : self._len] = keys
        self._v[:, :, : self._len] = values
        self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows `indices` (finished captions leave the batch)."""
        if self._len:
            idx = indices.to(self._k.device)
            self._rebuild(self.keys.index_select(0, idx), self.values.index_select(0, idx))

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Row i becomes rows i*repeats ... i*repeats + repeats - 1 (one per beam)."""
        if self._len:
            self._rebuild(
                self.keys.repeat_interleave(repeats, dim=0),
                self.values.repeat_interleave(repeats, dim=0),
            )


class KVCache:
    """Every layer's LayerCache, changed together (GPT-2's forward takes one of these)."""

    def __init__(self, n_layers: int, capacity: int):
        """capacity: the prefix length + the tokens to generate."""
        self.layers = [LayerCache(capacity) for _ in range(n_layers)]

    def seq_length(self) -> int:
        return self.layers[0].seq_length()

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        for layer in self.layers:
            layer.reorder_cache(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        for layer in self.layers:
            layer.batch_select_indices(indices)

    def batch_repeat_interleave(self, repeats: int) -> None:
        for layer in self.layers:
            layer.batch_repeat_interleave(repeats)
