"""The tensors of the Open Inference Protocol (KServe V2) as they travel: JSON ``data``, or the
binary tensor extension (a JSON header of ``Inference-Header-Content-Length`` bytes, then each
binary tensor's raw little-endian bytes in input order; BYTES elements each behind a 4-byte
length). Decoding checks every size before it reads or allocates anything.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .payloads import PayloadError

NUMPY = {"BOOL": np.dtype("?"), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
         "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
         "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
DATATYPES = frozenset({*NUMPY, "BYTES"})
MAX_DIMS = 32
MAX_ELEMENTS = 10_000_000  # per tensor: a shape that asks for more is refused before anything is read


@dataclass
class Tensor:
    """One input tensor: its values flat (row-major), as Python values."""

    name: str
    datatype: str
    shape: list[int]
    values: list[Any]


def split_body(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """The JSON header of an infer request and the binary data after it."""
    if header_length is None:
        return _json(body), b""
    text = header_length.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise PayloadError("Inference-Header-Content-Length must be a byte count", 400, "bad_binary_header")
    n = int(text)
    if n > len(body):
        raise PayloadError(f"Inference-Header-Content-Length is {n} bytes but the body has only {len(body)}", 400,
                           "bad_binary_header")
    return _json(body[:n]), body[n:]


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise PayloadError("the body is not valid JSON", 400, "malformed_json") from None


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    params = obj.get("parameters", {})
    if not isinstance(params, dict):
        raise PayloadError(f"{where}.parameters must be an object", 400)
    return params


def request_tensors(header: Any, blob: bytes) -> list[Tensor]:
    """The input tensors of an infer request: JSON ``data``, or ``binary_data_size`` bytes of ``blob``
    each, in order; every byte of ``blob`` must belong to an input."""
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise PayloadError('the body must be {"inputs": [{"name", "shape", "datatype", "data"}, ...]}', 400)
    _parameters(header, "the request")
    tensors: list[Tensor] = []
    offset = 0
    for i, t in enumerate(header["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("shape"), list):
            raise PayloadError(f"{where} needs name, shape, datatype and data", 400)
        datatype, shape = t.get("datatype"), t["shape"]
        if not isinstance(datatype, str) or datatype not in DATATYPES:
            raise PayloadError(f"{where}.datatype {str(datatype)[:20]!r} is not one of {', '.join(sorted(DATATYPES))}",
                               400, "unknown_datatype")
        if len(shape) > MAX_DIMS or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                            for s in shape):
            raise PayloadError(f"{where}.shape must be at most {MAX_DIMS} non-negative integers", 400)
        count = math.prod(shape)
        if count > MAX_ELEMENTS:
            raise PayloadError(f"{where}.shape {shape} has {count} elements; the limit is {MAX_ELEMENTS}", 413,
                               "batch_too_large")
        size = _parameters(t, where).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise PayloadError(f"{where}.parameters.binary_data_size must be a byte count", 400)
            if offset + size > len(blob):
                raise PayloadError(f"{where} declares {size} bytes of binary data but only {len(blob) - offset} "
                                   "remain in the body", 400, "bad_binary_data")
            values = decode(blob[offset:offset + size], datatype, count, where)
            offset += size
        elif "data" in t:
            values = flatten(t["data"], f"{where}.data", shape)
            if len(values) != count:
                raise PayloadError(f"{where}: shape {shape} holds {count} values but data has {len(values)}", 400)
        else:
            raise PayloadError(f"{where} has neither data nor parameters.binary_data_size", 400)
        tensors.append(Tensor(str(t.get("name", "")), datatype, shape, values))
    if offset != len(blob):
        raise PayloadError(f"{len(blob) - offset} bytes of binary data after the header belong to no input", 400,
                           "bad_binary_data")
    return tensors


def decode(raw: bytes, datatype: str, count: int, where: str) -> list[Any]:
    """``count`` values of ``datatype`` from exactly the bytes ``raw``."""
    if datatype == "BYTES":
        values, pos = [], 0
        for _ in range(count):
            if pos + 4 > len(raw):
                raise PayloadError(f"{where}: BYTES data ends inside an element's 4-byte length", 400,
                                   "bad_binary_data")
            (n,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + n > len(raw):
                raise PayloadError(f"{where}: a BYTES element of {n} bytes runs past the end of its data", 400,
                                   "bad_binary_data")
            values.append(_text(raw[pos:pos + n]))
            pos += n
        if pos != len(raw):
            raise PayloadError(f"{where}: {len(raw) - pos} bytes after its {count} BYTES elements", 400,
                               "bad_binary_data")
        return values
    dtype = NUMPY[datatype]
    if len(raw) != count * dtype.itemsize:
        raise PayloadError(f"{where}: {len(raw)} bytes of binary data, but its shape holds {count} {datatype} values "
                           f"({count * dtype.itemsize} bytes)", 400, "bad_binary_data")
    array = np.frombuffer(raw, dtype)
    if datatype == "BOOL":
        array = array.astype(np.int64)  # a feature is a number to the model: True is 1
    return array.tolist()


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise PayloadError("a BYTES element is not UTF-8 text", 400, "bad_binary_data") from None


def flatten(data: Any, where: str = "data", shape: list[int] | None = None) -> list[Any]:
    """The values of a nested list, row-major, without recursion. Nested data must follow ``shape``:
    a list of lists at depth d holds shape[d] of them, a list of values at depth d holds the rest
    of the tensor (prod(shape[d:]) values), so rows are never re-cut; deeper than ``MAX_DIMS`` is refused."""
    if not isinstance(data, list):
        raise PayloadError(f"{where} must be a list", 400)
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    stack = [(iter(data), 1)]
    _check_level(data, 0, shape, where)
    while stack:
        items, depth = stack[-1]
        for d in items:
            if isinstance(d, list):
                if depth >= MAX_DIMS:
                    raise PayloadError(f"{where} is nested more than {MAX_DIMS} levels deep", 400)
                _check_level(d, depth, shape, where)
                stack.append((iter(d), depth + 1))
                break
            out.append(d)
        else:
            stack.pop()
    return out


def _check_level(items: list[Any], depth: int, shape: list[int] | None, where: str) -> None:
    if shape is None:
        return
    nested = bool(items) and isinstance(items[0], list)
    want = (shape[depth] if depth < len(shape) else 0) if nested else math.prod(shape[depth:])
    if len(items) != want or any(isinstance(v, list) != nested for v in items):
        raise PayloadError(f"{where} is nested unlike its shape {shape} (a list of {len(items)} at depth {depth})",
                           400)


def encode(values: list[Any], datatype: str) -> bytes:
    """``values`` (flat) as the binary tensor extension carries ``datatype``."""
    if datatype == "BYTES":
        parts = []
        for v in values:
            b = v if isinstance(v, bytes) else str(v).encode()
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.asarray(values, dtype=NUMPY[datatype]).tobytes()


Output = tuple[dict[str, Any], list[Any], bool]  # a tensor's description, its flat values, whether it goes binary


def response_body(header: dict[str, Any], outputs: list[Output]) -> tuple[bytes, int | None]:
    """The body of an infer response: ``header`` with its ``outputs`` (each a tensor's description,
    flat values, and whether it goes binary) and, when any goes binary, the JSON header's length."""
    blobs: list[bytes] = []
    described = []
    for spec, values, binary in outputs:
        if binary:
            raw = encode(values, spec["datatype"])
            blobs.append(raw)
            described.append({**spec, "parameters": {"binary_data_size": len(raw)}})
        else:
            described.append({**spec, "data": values})
    head = orjson.dumps({**header, "outputs": described}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
