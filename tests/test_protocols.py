"""The standard protocols over real HTTP: Open Inference Protocol binary tensors, KServe V1 and
MLflow's CSV/Parquet bodies, and every malformed body of the issue answered 4xx JSON while the
server keeps serving. (The real clients against the reference servers: test_protocol_clients.py.)"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import socket
import zlib

import numpy as np
import pytest

from nbmlops.serving.payloads import PayloadError
from nbmlops.serving.tensors import decode, encode, request_tensors, response_body, split_body


def post(dep, path, body: bytes, headers: dict[str, str]):
    conn = http.client.HTTPConnection("127.0.0.1", dep.port, timeout=30)
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, payload, resp


def get(dep, path):
    conn = http.client.HTTPConnection("127.0.0.1", dep.port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, payload, resp


def binary_request(inputs: list[tuple[str, str, list[int], bytes]], outputs=None, **extra) -> tuple[bytes, dict]:
    header = {"inputs": [{"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(b)}}
                         for n, d, s, b in inputs], **extra}
    if outputs is not None:
        header["outputs"] = outputs
    head = json.dumps(header).encode()
    return head + b"".join(b for *_, b in inputs), {"Inference-Header-Content-Length": str(len(head))}


# -- the codec, without a server ---------------------------------------------------------------

@pytest.mark.parametrize("datatype,values", [
    ("BOOL", [True, False, True]), ("UINT8", [0, 255, 7]), ("UINT16", [0, 65535]), ("UINT32", [1, 2**32 - 1]),
    ("UINT64", [0, 2**64 - 1]), ("INT8", [-128, 127]), ("INT16", [-1, 300]), ("INT32", [-(2**31), 5]),
    ("INT64", [-(2**63), 2**63 - 1]), ("FP16", [0.5, -2.0]), ("FP32", [1.5, -0.25]), ("FP64", [1e-300, 3.25]),
    ("BYTES", ["a", "", "héllo"]),
])
def test_every_datatype_round_trips_through_the_binary_extension(datatype, values):
    raw = encode(values, datatype)
    got = decode(raw, datatype, len(values), "inputs[0]")
    assert got == ([int(v) for v in values] if datatype == "BOOL" else values)


def test_bytes_wire_format_is_length_prefixed_little_endian():
    assert encode(["ab", "c"], "BYTES") == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"


@pytest.mark.parametrize("raw,datatype,count,message", [
    (b"\x00" * 7, "FP64", 1, "7 bytes of binary data, but its shape holds 1 FP64"),
    (b"\x05\x00", "BYTES", 1, "ends inside an element's 4-byte length"),
    (b"\x05\x00\x00\x00ab", "BYTES", 1, "runs past the end"),
    (b"\x01\x00\x00\x00abc", "BYTES", 1, "2 bytes after its 1 BYTES elements"),
    (b"\x02\x00\x00\x00\xff\xfe", "BYTES", 1, "not UTF-8"),
])
def test_malformed_binary_tensors_are_named(raw, datatype, count, message):
    with pytest.raises(PayloadError, match=message) as e:
        decode(raw, datatype, count, "inputs[0]")
    assert e.value.status == 400


def test_header_length_and_declared_sizes_are_checked_before_reading():
    with pytest.raises(PayloadError, match="Inference-Header-Content-Length is 99 bytes but the body has only 2"):
        split_body(b"{}", "99")
    with pytest.raises(PayloadError, match="must be a byte count"):
        split_body(b"{}", "-1")
    header = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}]}
    with pytest.raises(PayloadError, match="declares 8 bytes of binary data but only 4 remain"):
        request_tensors(header, b"\x00" * 4)
    with pytest.raises(PayloadError, match="3 bytes of binary data after the header belong to no input"):
        request_tensors(header, b"\x00" * 11)
    huge = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [10**6, 10**6], "data": []}]}
    with pytest.raises(PayloadError, match="the limit is") as e:
        request_tensors(huge, b"")
    assert e.value.status == 413


def test_response_puts_binary_outputs_after_the_json_header():
    body, n = response_body({"id": "1"}, [({"name": "a", "datatype": "INT64", "shape": [2]}, [1, 2], True),
                                          ({"name": "b", "datatype": "FP64", "shape": [1]}, [0.5], False)])
    head = json.loads(body[:n])
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 16} and "data" not in head["outputs"][0]
    assert head["outputs"][1]["data"] == [0.5]
    assert np.frombuffer(body[n:], "<i8").tolist() == [1, 2]
    assert response_body({}, [({"name": "b", "datatype": "FP64", "shape": [1]}, [0.5], False)])[1] is None


# -- a real server ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dep(served):
    return served[0]


@pytest.fixture(scope="module")
def data(served):
    _, model, X, _ = served
    return model, X


def _v2(dep, body, headers, path="/v2/models/cancer/infer"):
    status, payload, resp = post(dep, path, body, headers)
    n = resp.getheader("Inference-Header-Content-Length")
    if n is None:
        return status, json.loads(payload), b""
    return status, json.loads(payload[:int(n)]), payload[int(n):]


@pytest.mark.process
def test_binary_request_and_binary_outputs_match_the_model(dep, data):
    model, X = data
    rows = X.values[:5].astype(np.float32)
    body, headers = binary_request([("input-0", "FP32", [5, 30], rows.tobytes())],
                                   outputs=[{"name": "predict", "parameters": {"binary_data": True}},
                                            {"name": "predict_proba"}], id="req-7")
    status, head, blob = _v2(dep, body, headers)
    assert status == 200, head
    assert head["id"] == "req-7" and [o["name"] for o in head["outputs"]] == ["predict", "predict_proba"]
    predict, proba = head["outputs"]
    assert predict["datatype"] == "INT64" and predict["shape"] == [5]
    assert np.frombuffer(blob, "<i8").tolist() == model.predict(X.iloc[:5].astype(np.float32)).tolist()
    assert proba["shape"] == [5, 2] and np.allclose(np.reshape(proba["data"], (5, 2)),
                                                    model.predict_proba(X.iloc[:5].astype(np.float32)))


@pytest.mark.process
def test_metadata_declares_exactly_what_infer_returns(dep):
    status, payload, _ = get(dep, "/v2/models/cancer/versions/1")
    meta = json.loads(payload)
    assert status == 200 and meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 30]}]
    body = json.dumps({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 30],
                                   "data": [[1.0] * 30, [2.0] * 30]}]}).encode()
    status, head, _ = _v2(dep, body, {"Content-Type": "application/json"}, "/v2/models/cancer/versions/1/infer")
    assert status == 200
    declared = {o["name"]: (o["datatype"], len(o["shape"])) for o in meta["outputs"]}
    answered = {o["name"]: (o["datatype"], len(o["shape"])) for o in head["outputs"]}
    assert declared == answered
    assert get(dep, "/v2/models/cancer/versions/1/ready")[0] == 200
    status, payload, _ = get(dep, "/v2/models/cancer/versions/9/ready")
    assert status == 404 and "no version '9'" in json.loads(payload)["error"]


@pytest.mark.process
def test_kserve_v1_routes(dep):
    assert json.loads(get(dep, "/")[1]) == {"status": "alive"}
    assert json.loads(get(dep, "/v1/models")[1]) == {"models": ["cancer"]}
    assert json.loads(get(dep, "/v1/models/cancer")[1]) == {"name": "cancer", "ready": True}
    status, payload, _ = post(dep, "/v1/models/cancer:explain", b"{}", {"Content-Type": "application/json"})
    assert status == 501 and "no explainer" in json.loads(payload)["error"]


@pytest.mark.process
def test_mlflow_csv_parquet_and_columns(dep, data):
    model, X = data
    want = model.predict(X.iloc[:4]).tolist()
    for csv in (X.iloc[:4].to_csv(index=False), X.iloc[:4].to_csv(index=False, header=False),
                X.iloc[:4, ::-1].to_csv(index=False),  # columns in another order, by name
                X.iloc[:4].to_csv()):  # with pandas' index column
        status, payload, _ = post(dep, "/invocations", csv.encode(), {"Content-Type": "text/csv; charset=utf-8"})
        assert status == 200 and json.loads(payload)["predictions"] == want
    buf = io.BytesIO()
    X.iloc[:4].to_parquet(buf)
    for media in ("application/x-parquet", "application/vnd.apache.parquet"):
        status, payload, _ = post(dep, "/invocations", buf.getvalue(), {"Content-Type": media})
        assert status == 200 and json.loads(payload)["predictions"] == want
    columns = json.dumps({"inputs": X.iloc[:4].to_dict(orient="list"), "params": {"x": 1}}).encode()
    status, payload, _ = post(dep, "/invocations", columns, {"Content-Type": "application/json"})
    assert status == 200 and json.loads(payload)["predictions"] == want
    status, payload, _ = get(dep, "/version")
    assert status == 200 and payload.decode().startswith("nbmlops ")


def _gzip_bomb() -> bytes:
    return gzip.compress(b"[" * (8 << 20))  # 8 MiB inflated, 8 KiB sent


BAD = [
    ("header length beyond the body", "/v2/models/cancer/infer", b"{}", {"Inference-Header-Content-Length": "500"},
     400, "body has only 2"),
    ("byte size disagrees with shape", "/v2/models/cancer/infer",
     *binary_request([("input-0", "FP64", [1, 30], b"\x00" * 16)]), 400, "16 bytes of binary data"),
    ("unknown datatype", "/v2/models/cancer/infer",
     json.dumps({"inputs": [{"name": "x", "datatype": "FP128", "shape": [1], "data": [1]}]}).encode(),
     {"Content-Type": "application/json"}, 400, "'FP128' is not one of"),
    ("BYTES with a truncated length prefix", "/v2/models/cancer/infer",
     *binary_request([("input-0", "BYTES", [1, 30], b"\x03\x00")]), 400, "4-byte length"),
    ("unknown output", "/v2/models/cancer/infer",
     json.dumps({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 30], "data": [0.0] * 30}],
                 "outputs": [{"name": "logits"}]}).encode(), {"Content-Type": "application/json"}, 400,
     "no output 'logits'"),
    ("CSV with a wrong column count", "/invocations", b"1,2,3\n", {"Content-Type": "text/csv"}, 400,
     "has 3 columns; the model expects 30"),
    ("CSV with a non-numeric cell", "/invocations", (",".join(["1"] * 29) + ",abc\n").encode(),
     {"Content-Type": "text/csv"}, 400, "'abc' is not a number"),
    ("Parquet that is not Parquet", "/invocations", b"PAR1 not really", {"Content-Type": "application/x-parquet"},
     400, "not a Parquet file"),
    ("gzip that does not inflate", "/v2/models/cancer/infer", b"\x1f\x8bnot gzip",
     {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, "not valid gzip"),
    ("a gzip bomb", "/v2/models/cancer/infer", _gzip_bomb(),
     {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 413, "once inflated"),
    ("deflate that is truncated", "/invocations", zlib.compress(b'{"inputs": [[1, 2]]}')[:-6],
     {"Content-Type": "application/json", "Content-Encoding": "deflate"}, 400, "truncated"),
    ("an unknown content encoding", "/invocations", b"{}", {"Content-Type": "application/json",
                                                           "Content-Encoding": "br"}, 415, "'br' is not supported"),
]


@pytest.mark.process
@pytest.mark.parametrize("what,path,body,headers,status,message", BAD, ids=[b[0] for b in BAD])
def test_malformed_bodies_are_4xx_json_naming_the_problem(dep, data, what, path, body, headers, status, message):
    got, payload, resp = post(dep, path, body, headers)
    answer = json.loads(payload)
    assert got == status, answer
    assert message in (answer.get("error") or answer.get("message")), answer
    if path == "/invocations":
        assert set(answer) == {"error_code", "message"}, answer
    model, X = data
    ok = json.dumps({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 30],
                                 "data": X.values[0].tolist()}]}).encode()
    status_after, _, _ = post(dep, "/v2/models/cancer/infer", ok, {"Content-Type": "application/json"})
    assert status_after == 200  # and the server keeps serving


@pytest.mark.process
def test_a_1gb_declared_length_is_refused_before_reading(dep):
    with socket.create_connection(("127.0.0.1", dep.port), timeout=10) as s:
        s.sendall(b"POST /v2/models/cancer/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{")
        reply = b""
        while b"limited" not in reply:  # the head and the body may come in two packets
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and "request bodies are limited" in reply


@pytest.mark.process
def test_untyped_posts_are_taken_only_where_no_browser_form_can_send_them(dep):
    body = json.dumps({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 30],
                                   "data": [0.0] * 30}]}).encode()
    assert post(dep, "/v2/models/cancer/infer", body, {})[0] == 200  # tritonclient sends no Content-Type
    assert post(dep, "/predict", b'{"features": []}', {})[0] == 415
    status, payload, _ = post(dep, "/invocations", b"1,2", {"Content-Type": "text/plain"})
    assert status == 415 and json.loads(payload)["error_code"] == "BAD_REQUEST"  # MLflow's form, from the Guard
    status, _, _ = post(dep, "/v2/models/cancer/infer", body, {"Origin": "http://evil.example"})
    assert status == 403
