"""The Arrow tensor codec: numpy arrays <-> Arrow tensor columns. The one place arcray converts them.

Tensor columns (calibrated ``windows``/``binned`` and their masks, decoded ``image`` frames) use
Arrow's canonical fixed-shape tensor extension (``arrow.fixed_shape_tensor``), which pyarrow,
pandas and Ray Data (as numpy ndarrays) all read. Readers also meet two other encodings of the same
data, which ``to_ndarray`` accepts too: Ray Data's own tensor extension and plain nested lists of
equal length (what a tensor column becomes after a round trip through some writers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from arcray.errors import InputError


def tensor_array(a: np.ndarray) -> pa.ExtensionArray:
    """``[N, ...]`` numpy -> an Arrow fixed-shape tensor column of N rows (one tensor per row)."""
    a = np.ascontiguousarray(a)
    if a.ndim < 2:
        raise ValueError(f"a tensor column needs [N, ...] with at least 2 dimensions, got {a.shape}")
    if a.strides != _c_strides(a):  # e.g. x[None] has a 0 stride, which Arrow refuses
        a = a.copy()
    return pa.FixedShapeTensorArray.from_numpy_ndarray(a)


def _c_strides(a: np.ndarray) -> tuple[int, ...]:
    strides, step = [], a.itemsize
    for n in reversed(a.shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def tensor_row(a: np.ndarray) -> pa.ExtensionArray:
    """One ndarray -> a one-row tensor column."""
    a = np.ascontiguousarray(a)
    return tensor_array(a.reshape((1, *a.shape)))


def tensor_shape(schema: pa.Schema, name: str) -> tuple[int, ...]:
    """The per-row shape of tensor column ``name`` in ``schema``."""
    return tuple(schema.field(name).type.shape)


def to_ndarray(column: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A tensor column -> one numpy array ``[N, ...]``.

    ``column``: a pyarrow (Chunked)Array (fixed-shape tensor, Ray tensor extension, or nested lists
    of equal length), or a pandas Series as ``to_pandas`` makes it (each cell a flat array: pass
    ``shape``, e.g. ``tensor_shape(schema, name)``).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not isinstance(column, pa.Array):
        if shape is None:
            raise ValueError("a pandas tensor column needs its shape (tensor_shape(schema, name))")
        return np.stack([np.asarray(v) for v in column]).reshape(len(column), *shape)
    if isinstance(column.type, pa.FixedShapeTensorType):
        return column.to_numpy_ndarray()
    if isinstance(column.type, pa.ExtensionType):
        try:
            return np.asarray(column.to_numpy(zero_copy_only=False))
        except Exception:  # noqa: BLE001 - fall back to the storage lists
            column = column.storage
    return _nested_lists(column)


def _nested_lists(arr: pa.Array) -> np.ndarray:
    n, shape = len(arr), []
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or \
            pa.types.is_fixed_size_list(arr.type):
        lengths = (np.full(len(arr), arr.type.list_size) if pa.types.is_fixed_size_list(arr.type)
                   else np.asarray(arr.value_lengths().fill_null(0)))
        if len(lengths) and (lengths != lengths[0]).any():
            raise InputError("tensor column has rows of different shapes")
        shape.append(int(lengths[0]) if len(lengths) else 0)
        arr = arr.flatten()
    return arr.to_numpy(zero_copy_only=False).reshape(n, *shape)


def is_tensor(field_type: pa.DataType) -> bool:
    """True for a tensor-like column type (extension or list): not a scalar column."""
    return (isinstance(field_type, pa.ExtensionType) or pa.types.is_list(field_type)
            or pa.types.is_large_list(field_type) or pa.types.is_fixed_size_list(field_type))
