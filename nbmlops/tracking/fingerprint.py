"""Dataset fingerprints: what a run was trained on, without copying the data.

A fingerprint is a content hash plus the shape, columns and dtypes, so two runs
that saw the same data can be told apart from two that did not.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

from ..errors import InvalidInput


def fingerprint(data: Any) -> dict[str, Any]:
    """``{"sha256", "kind", "shape", "columns", "dtypes"}`` for a DataFrame, Series, array,
    sparse matrix or list. The hash covers values, index, column names and dtypes."""
    h = hashlib.sha256()
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(data, (pd.DataFrame, pd.Series)):
        frame = data.to_frame() if isinstance(data, pd.Series) else data
        columns = [str(c) for c in frame.columns]
        dtypes = [str(t) for t in frame.dtypes]
        h.update(repr((type(data).__name__, columns, dtypes, data.shape)).encode())
        if len(frame):
            h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
        return {
            "sha256": h.hexdigest(),
            "kind": type(data).__name__,
            "shape": list(data.shape),
            "columns": columns,
            "dtypes": dtypes,
        }
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(data):
        csr = data.tocsr()
        h.update(repr(("sparse", csr.shape, str(csr.dtype))).encode())
        for part in (csr.data, csr.indices, csr.indptr):
            h.update(memoryview(part).cast("B"))
        return {"sha256": h.hexdigest(), "kind": "sparse", "shape": list(csr.shape), "columns": None,
                "dtypes": [str(csr.dtype)]}
    import numpy as np

    try:
        arr = np.asarray(data)
    except Exception as exc:  # ragged lists and the like
        raise InvalidInput(f"cannot fingerprint a {type(data).__name__}: {exc}") from None
    if arr.dtype == object:
        h.update(repr(("object", arr.shape)).encode())
        h.update(repr(arr.tolist()).encode())
    else:
        arr = np.ascontiguousarray(arr)
        h.update(repr(("ndarray", arr.shape, arr.dtype.str)).encode())
        h.update(memoryview(arr).cast("B"))
    return {"sha256": h.hexdigest(), "kind": type(data).__name__, "shape": list(arr.shape), "columns": None,
            "dtypes": [str(arr.dtype)]}
