"""A hostile review of the protocol work of issue 18, kept as regressions: each test sends a real
server one request found to break it (a 500, a silent wrong answer, or memory out of all
proportion to the body) and says what it must do instead. Real server processes over HTTP on
127.0.0.1; the server's peak memory is read from /proc (VmHWM, reset through clear_refs)."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import sys

import numpy as np
import pytest

import nbmlops

pytestmark = [pytest.mark.process,  # each test drives a model server process
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the server's memory in /proc")]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """'cat' (a city, one-hot, and a number x: named features, one of them text) and 'bare' (4 numbers,
    fitted without feature names), each served by its own process."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    nbmlops.set_store(tmp_path_factory.mktemp("attacks") / ".nbmlops")
    rng = np.random.default_rng(0)
    cities = pd.DataFrame({"city": rng.choice(["paris", "oslo"], 200), "x": rng.normal(size=200)})
    cat = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["city"]),
                                                remainder="passthrough"), LogisticRegression())
    nbmlops.register_model(cat.fit(cities, cities.city == "oslo"), "cat", reference=(cities, cities.city == "oslo"))
    X = rng.normal(size=(200, 4))
    nbmlops.register_model(LogisticRegression().fit(X, X[:, 0] > 0), "bare")
    deps = []
    try:
        deps.append(nbmlops.serve("cat", log_requests=False))
        deps.append(nbmlops.serve("bare", log_requests=False))
        yield {"cat": deps[0], "bare": deps[1]}
    finally:
        for dep in deps:
            dep.stop()
        nbmlops.set_store(None)


def send(dep, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", dep.port, timeout=60)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def post_json(dep, path: str, body) -> tuple[int, bytes]:
    return send(dep, "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"})


def still_serving(dep) -> None:
    status, body = post_json(dep, "/invocations", {"dataframe_records": [{"city": "oslo", "x": 0.5}]}
                             if dep.name == "cat" else {"instances": [[1.0, 2.0, 3.0, 4.0]]})
    assert status == 200, body


def peak_growth(dep, request) -> tuple[int, int, bytes]:
    """(MiB the server's peak RSS rose during ``request()``, its status, its body)."""
    with open(f"/proc/{dep.pid}/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    before = _vm(dep.pid, "VmHWM")
    status, body = request()
    return (_vm(dep.pid, "VmHWM") - before) >> 10, status, body


def _vm(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def parquet(table, **options) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, **options)
    return buf.getvalue()


def test_parquet_dictionary_bomb_is_refused_before_it_is_decoded(servers):
    """An 800-byte Parquet body whose dictionary-encoded text column decodes to 9,000 × 12 kB
    (108 MB) was decoded whole and scored (200): a bomb the body cap never sees."""
    import pyarrow as pa

    dep = servers["cat"]
    rows = 9000
    body = parquet(pa.table({"city": pa.array(["p" * 12_000] * rows).dictionary_encode(), "x": np.zeros(rows)}),
                   compression="zstd")
    assert len(body) < 4096
    grew, status, answer = peak_growth(dep, lambda: send(dep, "POST", "/invocations", body,
                                                         {"Content-Type": "application/x-parquet"}))
    assert status in (400, 413), answer[:200]
    assert json.loads(answer)["error_code"] in ("BAD_REQUEST", "RESOURCE_LIMIT_EXCEEDED")
    assert grew < 48, f"the server's peak memory rose {grew} MiB for a {len(body)}-byte body"
    still_serving(dep)


def test_parquet_row_limit_is_checked_before_the_rows_are_read(servers):
    """8,000,000 rows of zeros compress to ~140 kB; the 10,000-row limit was checked only after all
    of them were decoded into Python lists."""
    import pyarrow as pa

    dep = servers["cat"]
    rows = 8_000_000
    body = parquet(pa.table({"city": pa.array(["paris"] * rows).dictionary_encode(), "x": np.zeros(rows)}),
                   compression="zstd")
    grew, status, answer = peak_growth(dep, lambda: send(dep, "POST", "/invocations", body,
                                                         {"Content-Type": "application/x-parquet"}))
    assert status == 413, answer[:200]
    assert "10000" in json.loads(answer)["message"]
    assert grew < 48, f"the server's peak memory rose {grew} MiB before refusing {rows} rows"
    still_serving(dep)


@pytest.mark.parametrize("which", ["one-100MB-string", "1000-float-columns"])
def test_parquet_decoded_size_is_bounded_before_reading(servers, which):
    """What a Parquet footer says before any page is read: a 100 MB text cell stored plain and
    compressed (a ~4 kB body; total_uncompressed_size says 100 MB), or 10,000 rows × 1,000 FP64 columns
    (80 MB; num_rows × 8 bytes × columns) were decoded whole before any size was checked."""
    import pyarrow as pa

    if which == "one-100MB-string":
        dep = servers["cat"]
        body = parquet(pa.table({"city": pa.array(["z" * 100_000_000]), "x": [1.0]}), compression="zstd",
                       use_dictionary=False)
    else:
        dep = servers["bare"]
        body = parquet(pa.table({f"c{i}": np.zeros(10_000) for i in range(1000)}), compression="zstd")
    assert len(body) < 1 << 20
    grew, status, answer = peak_growth(dep, lambda: send(dep, "POST", "/invocations", body,
                                                         {"Content-Type": "application/x-parquet"}))
    assert status in (400, 413), answer[:200]
    assert grew < 48, f"the server's peak memory rose {grew} MiB for a {len(body)}-byte body"
    still_serving(dep)


def test_csv_is_checked_row_by_row_not_after_parsing_all_of_it(servers):
    """A 4 MB CSV of 2,000,000 one-cell rows was split and converted whole (~200 MB, seconds of CPU)
    before its first row's width (1, the model takes 4) or the row limit was checked."""
    dep = servers["bare"]
    body = b"1\n" * 2_000_000
    grew, status, answer = peak_growth(dep, lambda: send(dep, "POST", "/invocations", body,
                                                         {"Content-Type": "text/csv"}))
    assert status == 400 and "columns" in json.loads(answer)["message"], answer[:200]
    assert grew < 48, f"the server's peak memory rose {grew} MiB to refuse row 1 of a CSV"
    body = b"1,2,3,4\n" * 500_000
    grew, status, answer = peak_growth(dep, lambda: send(dep, "POST", "/invocations", body,
                                                         {"Content-Type": "text/csv"}))
    assert status == 413, answer[:200]
    assert grew < 48, f"the server's peak memory rose {grew} MiB before refusing 500,000 CSV rows"
    still_serving(dep)


V2_ROW = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                                 "data": [1.0, 2.0, 3.0, 4.0]}]}).encode()


@pytest.mark.parametrize("length", ["\u00b2", "9" * 5000], ids=["superscript-two", "5000-digits"])
def test_binary_header_length_that_is_no_byte_count_is_a_400(servers, length):
    """``str.isdigit`` takes '²' and int() refuses more than 4,300 digits: both were a 500."""
    dep = servers["bare"]
    status, answer = send(dep, "POST", "/v2/models/bare/infer", V2_ROW,
                          {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": length})
    assert status == 400, answer[:200]
    assert "Inference-Header-Content-Length" in json.loads(answer)["error"]
    still_serving(dep)


@pytest.mark.parametrize("version", ["%C2%B2", "9" * 5000], ids=["superscript-two", "5000-digits"])
@pytest.mark.parametrize("route", ["ready", "infer"])
def test_a_version_in_the_path_that_is_no_number_is_a_404(servers, version, route):
    """``version.isdigit()`` then ``int(version)`` in protocols.version_route: '²' and 5,000 digits
    were a 500, on the open readiness route too (no token needed to raise it)."""
    dep = servers["bare"]
    path = f"/v2/models/bare/versions/{version}/{route}"
    status, answer = send(dep, "GET", path) if route == "ready" else \
        send(dep, "POST", path, V2_ROW, {"Content-Type": "application/json"})
    assert status == 404, answer[:200]
    assert "version" in json.loads(answer)["error"]


@pytest.mark.parametrize("datatype", [["FP64"], {"type": "FP64"}], ids=["list", "object"])
def test_a_datatype_that_is_not_a_string_is_a_400(servers, datatype):
    """``datatype not in DATATYPES`` hashes the value: a list or an object raised TypeError (500)."""
    dep = servers["bare"]
    status, answer = post_json(dep, "/v2/models/bare/infer", {"inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": datatype, "data": [1.0, 2.0, 3.0, 4.0]}]})
    assert status == 400, answer[:200]
    assert "datatype" in json.loads(answer)["error"]


@pytest.mark.parametrize("column", [["city"], {"name": "city"}], ids=["list", "object"])
def test_dataframe_split_columns_that_are_not_names_are_a_400(servers, column):
    """``dict(zip(columns, row))`` with a list or an object among the columns raised TypeError (500)."""
    dep = servers["cat"]
    status, answer = post_json(dep, "/invocations", {"dataframe_split": {"columns": [column, "x"],
                                                                         "data": [["oslo", 1.0]]}})
    assert status == 400, answer[:200]
    assert json.loads(answer)["error_code"] == "BAD_REQUEST"


LONG = "k" * 1_000_000


@pytest.mark.parametrize("path, body", [
    ("/invocations", {"dataframe_records": [{LONG: 1, "x": 1.0}]}),
    ("/v2/models/cat/infer", {"inputs": [{"name": LONG, "shape": [1], "datatype": "BYTES", "data": ["oslo"]},
                                         {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}),
], ids=["record-key", "v2-tensor-name"])
def test_error_messages_do_not_echo_the_input(servers, path, body):
    """An unexpected 1 MB feature or tensor name came back whole in the error (payloads.py promises
    messages that never echo the payload): Schema.record and oip.rows quote names uncut."""
    dep = servers["cat"]
    status, answer = post_json(dep, path, body)
    assert status in (400, 422), answer[:200]
    assert len(answer) < 2000, f"a {len(answer)}-byte error answer"


def test_v2_json_data_nested_unlike_its_shape_is_refused(servers):
    """Shape [2, 4] with rows of 3 and 5 values was flattened and re-cut into rows of 4 (200): the
    model scored rows the client never sent."""
    dep = servers["bare"]
    status, answer = post_json(dep, "/v2/models/bare/infer", {"inputs": [
        {"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": [[1, 2, 3], [4, 5, 6, 7, 8]]}]})
    assert status == 400, answer[:300]
    assert "shape" in json.loads(answer)["error"]


def test_headerless_csv_whose_first_row_has_a_missing_cell_keeps_that_row(servers):
    """For a model without feature names, a first row with a cell that is no number was taken for a
    header and dropped: two rows in, one prediction out, with a 200."""
    dep = servers["bare"]
    status, answer = send(dep, "POST", "/invocations", b"1,,3,4\n5,6,7,8\n", {"Content-Type": "text/csv"})
    assert status == 400 or len(json.loads(answer)["predictions"]) == 2, answer[:200]


def test_csv_with_a_utf8_byte_order_mark_is_read(servers):
    """Excel's "CSV UTF-8" starts with a BOM: the header's first name read as '\\ufeffcity', so the
    header was taken for data and the answer was a 400 about a number."""
    dep = servers["cat"]
    plain = b"city,x\r\noslo,0.5\r\nparis,-1\r\n"
    status, answer = send(dep, "POST", "/invocations", b"\xef\xbb\xbf" + plain, {"Content-Type": "text/csv"})
    assert status == 200, answer[:200]
    assert json.loads(answer) == json.loads(send(dep, "POST", "/invocations", plain,
                                                 {"Content-Type": "text/csv"})[1])


def test_duplicate_column_names_are_refused_on_every_format(servers):
    """'city' twice: CSV scored the first, dataframe_split the last; the same table gave two answers."""
    dep = servers["cat"]
    status, answer = send(dep, "POST", "/invocations", b"city,city,x\noslo,paris,1\n", {"Content-Type": "text/csv"})
    assert status == 400 and "city" in json.loads(answer)["message"], answer[:200]
    status, answer = post_json(dep, "/invocations", {"dataframe_split": {"columns": ["city", "city", "x"],
                                                                         "data": [["oslo", "paris", 1]]}})
    assert status == 400 and "city" in json.loads(answer)["message"], answer[:200]


def test_gzip_bytes_after_the_stream_are_not_silently_ignored(servers):
    """Bytes after a gzip member were dropped without a word (200), and a second member (valid gzip,
    RFC 1952 §2.2) was cut off, answered 'not valid JSON'."""
    dep = servers["bare"]
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    status, answer = send(dep, "POST", "/v2/models/bare/infer", gzip.compress(V2_ROW) + b"trailing", headers)
    assert status == 400 and "gzip" in json.loads(answer)["error"], answer[:200]
    status, answer = send(dep, "POST", "/v2/models/bare/infer",
                          gzip.compress(V2_ROW[:20]) + gzip.compress(V2_ROW[20:]), headers)
    assert status == 200 or (status == 400 and "gzip" in json.loads(answer)["error"]), answer[:200]


def test_refused_v1_predictions_are_counted_under_their_own_route(servers):
    """A V1 :predict refused at the door (415) was counted as route /v1/models/{model_name}, the
    readiness GET, whose regex also matches 'cat:predict'."""
    dep = servers["cat"]
    for _ in range(3):
        status, _ = send(dep, "POST", "/v1/models/cat:predict", b"{}", {"Content-Type": "text/plain"})
        assert status == 415
    _, text = send(dep, "GET", "/metrics")
    series = [line for line in text.decode().splitlines()
              if line.startswith("model_http_requests_total{") and 'status="415"' in line and 'method="POST"' in line]
    assert any('route="/v1/models/{model_name}:predict"' in line for line in series), series
    assert not any('route="/v1/models/{model_name}"' in line for line in series), series
