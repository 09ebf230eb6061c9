"""The Open Inference Protocol row of benchmarks/serving.py (issue 18): binary V2 requests against JSON V2,
on nbmlops' model server and on KServe's reference ``kserve.ModelServer``, same model, same request bodies.

    python benchmarks/serving.py --only oip            # this row alone (about 7 minutes), writes its subsection
    python benchmarks/serving.py --only oip --quick    # smoke test, prints the subsection only

The model is a LogisticRegression fitted on scikit-learn's breast_cancer (569 × 30, NumPy arrays). nbmlops serves
it with ``register_model`` + ``serve`` (its defaults: micro-batching, request logging); KServe with
benchmarks/_kserve_server.py (a ``kserve.Model`` answering the same three outputs from one ``predict_proba``).
Both get the same bodies on ``POST /v2/models/bench-oip/infer``, built once per batch size from the input that
``GET /v2/models/bench-oip`` declares: binary as tritonclient sends by default (the bytes of its
``InferenceServerClient.generate_request_body``: a JSON header asking ``binary_data_output``, then the raw
little-endian tensor; header ``Inference-Header-Content-Length``), JSON as ``{"inputs": [{..., "data": [...]}]}``.
Before measuring, every answer (both servers, both bodies, and tritonclient's own ``infer`` call) must give the
fitted model's predictions and probabilities for the batch. Throughput: 8 clients (wrk, like the other rows),
interleaved rounds, medians, per-round ratios; binary against JSON, the closest comparison, gets extra back-to-back
pairs on each server (ABBA order). What differs between the bodies inside nbmlops is also timed in-process.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__:  # python -m benchmarks.serving
    from . import serving as base
    from ._common import free_port, log, machine
else:  # python benchmarks/serving.py
    import serving as base
    from _common import free_port, log, machine

Servers, fmt, rps, times = base.Servers, base.fmt, base.rps, base.times

HERE = Path(__file__).resolve().parent
SUBSECTION = "### Open Inference Protocol: binary vs JSON (issue 18)"
NAME = "bench-oip"
PATH = f"/v2/models/{NAME}/infer"
BATCHES = (1, 32)
CLIENTS = 8
SERVERS = ("nbmlops", "kserve")
BODIES = ("json", "binary")
FULL = dict(duration=3.0, warmup=1.0, rounds=7, pairs=6)
QUICK = dict(duration=2.0, warmup=0.5, rounds=1, pairs=1)

LUA = """wrk.method = "POST"
wrk.path = "{path}"
wrk.body = "{body}"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# -- bodies ------------------------------------------------------------------------------------------
def make_bodies(declared: dict[str, Any], X: Any) -> dict[tuple[int, str], tuple[bytes, dict[str, str]]]:
    """(rows, "json" | "binary") -> (body, headers), for the input tensor the model's V2 metadata declares."""
    import numpy as np
    import tritonclient.http as triton

    spec = declared["inputs"][0]
    dtype = {"FP64": np.float64, "FP32": np.float32}[spec["datatype"]]
    out = {}
    for n in BATCHES:
        x = np.ascontiguousarray(X[:n], dtype=dtype)
        tensor = {"name": spec["name"], "shape": [n, x.shape[1]], "datatype": spec["datatype"],
                  "data": x.ravel().tolist()}
        out[(n, "json")] = (json.dumps({"inputs": [tensor]}).encode(), {"Content-Type": "application/json"})
        inp = triton.InferInput(spec["name"], [n, x.shape[1]], spec["datatype"])
        inp.set_data_from_numpy(x, binary_data=True)
        body, header_length = triton.InferenceServerClient.generate_request_body([inp])
        out[(n, "binary")] = (body, {"Inference-Header-Content-Length": str(header_length)})  # as tritonclient
    return out


def post(port: int, body: bytes, headers: dict[str, str]) -> Any:
    """One infer call; its answer as tritonclient's ``InferResult`` (it parses JSON and binary answers alike)."""
    import tritonclient.http as triton

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", PATH, body, headers)
        answer = conn.getresponse()
        raw = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"POST {PATH} on port {port} ({len(body)} bytes, headers {headers}) answered "
                               f"{answer.status}: {raw[:500]!r}")
        length = answer.getheader("Inference-Header-Content-Length")
        return triton.InferResult.from_response_body(raw, header_length=int(length) if length else None)
    finally:
        conn.close()


def check_answers(ports: dict[str, int], bodies: dict[tuple[int, str], tuple[bytes, dict[str, str]]],
                  declared: dict[str, Any], model: Any, X: Any) -> list[str]:
    """Every server gives the fitted model's predictions (exactly) and probabilities (to 1e-9) for every body,
    and for tritonclient's own ``infer`` with its defaults; raises naming the first disagreement."""
    import numpy as np
    import tritonclient.http as triton

    seen = []
    for n in BATCHES:
        expected = model.predict(X[:n])
        proba = model.predict_proba(X[:n])
        for server, port in ports.items():
            answers = {kind: post(port, *bodies[(n, kind)]) for kind in BODIES}
            client = triton.InferenceServerClient(f"127.0.0.1:{port}")
            try:
                inp = triton.InferInput(declared["name"], [n, X.shape[1]], "FP64")
                inp.set_data_from_numpy(np.ascontiguousarray(X[:n]))
                answers["tritonclient infer"] = client.infer(NAME, [inp])
            finally:
                client.close()
            for kind, res in answers.items():
                got, got_proba = res.as_numpy("predict"), res.as_numpy("predict_proba")
                where = f"{server}, {kind}, {n} rows"
                if got is None or got_proba is None:
                    raise RuntimeError(f"{where}: outputs {[o['name'] for o in res.get_response()['outputs']]}")
                if got.tolist() != expected.tolist():
                    raise RuntimeError(f"{where}: predict {got.tolist()}, the fitted model {expected.tolist()}")
                if not np.allclose(got_proba, proba, rtol=1e-9, atol=0):
                    raise RuntimeError(f"{where}: predict_proba {got_proba.tolist()[:3]}…, the model "
                                       f"{proba.tolist()[:3]}…")
                seen.append(f"{where}: {res.get_output('predict')['datatype']} predict")
    return seen


def codec_probe(bodies: dict[tuple[int, str], tuple[bytes, dict[str, str]]], model: Any, X: Any,
                n: int = 2_000) -> dict[tuple[int, str], dict[str, float]]:
    """CPU per request of the part of nbmlops' infer route that differs between the two bodies, in-process (no
    HTTP, so less exposed to the machine's noise; best of 3): reading the tensors of the body (``split_body`` +
    ``request_tensors``) and writing the answer's three outputs (``response_body``, binary or JSON)."""
    from nbmlops.serving.tensors import request_tensors, response_body, split_body

    clock = time.perf_counter
    out = {}
    for (rows, kind), (body, headers) in bodies.items():
        proba = model.predict_proba(X[:rows])
        binary = kind == "binary"
        predict = model.predict(X[:rows]).tolist()
        outputs = [({"name": "predict", "datatype": "INT64", "shape": [rows]}, predict, binary),
                   ({"name": "probability", "datatype": "FP64", "shape": [rows]}, proba.max(axis=1).tolist(), binary),
                   ({"name": "predict_proba", "datatype": "FP64", "shape": [rows, 2]}, proba.ravel().tolist(), binary)]
        answer = {"model_name": NAME, "model_version": "1", "id": ""}
        length = headers.get("Inference-Header-Content-Length")
        read = write = float("inf")
        for _ in range(3):
            t = clock()
            for _ in range(n):
                request_tensors(*split_body(body, length))
            read = min(read, (clock() - t) / n)
            t = clock()
            for _ in range(n):
                response_body(answer, outputs)
            write = min(write, (clock() - t) / n)
        out[(rows, kind)] = {"read": read, "write": write, "answer": len(response_body(answer, outputs)[0])}
    return out


# -- servers -----------------------------------------------------------------------------------------
def start_kserve(servers: Servers, root: Path, model_file: Path) -> None:
    port = free_port()
    with open(root / "kserve.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, str(HERE / "_kserve_server.py"), str(model_file), NAME, str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=root)
    servers.procs["kserve"], servers.ports["kserve"] = proc, port
    servers.pids.add(proc.pid)
    servers.started["kserve"] = time.time()


def wait_kserve(servers: Servers, root: Path, timeout: float = 120) -> float:
    proc, port, t0 = servers.procs["kserve"], servers.ports["kserve"], servers.started["kserve"]
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"KServe ModelServer exited with {proc.returncode}:\n"
                               f"{(root / 'kserve.log').read_text(errors='replace')[-2000:]}")
        try:
            if base.http_get(port, f"/v2/models/{NAME}/ready") == 200:
                return time.time() - t0
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"KServe ModelServer did not answer within {timeout:.0f} s")


def metadata(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", f"/v2/models/{NAME}")
        answer = conn.getresponse()
        raw = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"GET /v2/models/{NAME} answered {answer.status}: {raw[:300]!r}")
        return json.loads(raw)
    finally:
        conn.close()


# -- load --------------------------------------------------------------------------------------------
def lua_string(data: bytes) -> str:
    """``data`` as the inside of a Lua string literal: every byte a three-digit decimal escape (binary-safe)."""
    return "".join(f"\\{b:03d}" for b in data)


def run_wrk(wrk: str, port: int, body: bytes, headers: dict[str, str], duration: float, root: Path) -> dict[str, Any]:
    script = root / f"oip-{port}.lua"
    script.write_text(LUA.format(path=PATH, body=lua_string(body),
                                 headers="\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())))
    cmd = [wrk, "-t1", f"-c{CLIENTS}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s", str(script),
           f"http://127.0.0.1:{port}{PATH}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
    n, us, p50, p99, *errors = (int(float(v)) for v in line.split()[1:])
    return {"rps": n / (us / 1e6), "p50": p50 / 1e6, "p99": p99 / 1e6, "errors": sum(errors), "requests": n}


def load_run(wrk: str | None, servers: Servers, server: str, body: bytes, headers: dict[str, str], duration: float,
             root: Path) -> dict[str, Any]:
    """One 8-client throughput run, with the server's CPU per request and the cores other work used meanwhile."""
    import asyncio

    port, pgid = servers.ports[server], servers.pid(server)
    s0, m0, w0 = base.group_cpu(pgid), base.machine_cpu(), base.children_cpu()
    if wrk is not None:
        res = run_wrk(wrk, port, body, headers, duration, root)
    else:
        head = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        res = asyncio.run(base._async_load(port, (head + "\r\n").encode() + body, CLIENTS, duration))
    s1, m1, w1 = base.group_cpu(pgid), base.machine_cpu(), base.children_cpu()
    if res["errors"]:
        raise RuntimeError(f"{server}: {res['errors']} errors in {res['requests']} requests")
    res["cpu"] = (s1 - s0) / res["requests"]
    wall = (m1[1] - m0[1]) / (os.cpu_count() or 1)
    res["others"] = max(0.0, ((m1[0] - m0[0]) - (s1 - s0) - (w1 - w0)) / wall) if wall > 0 else 0.0
    return res


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# -- the benchmark -----------------------------------------------------------------------------------
def bench(S: dict[str, Any], root: Path, client: str) -> dict[str, Any]:
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    import nbmlops

    X, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=10_000).fit(X, y)
    joblib.dump(model, root / "model.joblib")
    nbmlops.set_store(root / "store")
    nbmlops.register_model(model, NAME)
    wrk = base.ensure_wrk() if client == "wrk" else None
    r: dict[str, Any] = {"client": f"wrk ({base.wrk_version(wrk)})" if wrk else "asyncio client (in this process)",
                         "runs": {}, "pairs": {}, "uptime": [uptime()]}
    servers = Servers(root)
    try:
        start_kserve(servers, root, root / "model.joblib")
        servers.start_nbmlops("nbmlops", f"{NAME}/1")
        r["startup"] = {"kserve": wait_kserve(servers, root), "nbmlops": servers.started["nbmlops"]}
        declared = metadata(servers.ports["nbmlops"])
        r["declared"] = declared["inputs"][0]
        bodies = make_bodies(declared, X)
        r["sizes"] = {key: len(body) for key, (body, _) in bodies.items()}
        r["checked"] = check_answers({s: servers.ports[s] for s in SERVERS}, bodies, r["declared"], model, X)
        log(f"both servers give the model's predictions and probabilities for {len(r['checked'])} answers")
        r["probe"] = codec_probe(bodies, model, X)
        for body, headers in bodies.values():
            for server in SERVERS:
                load_run(wrk, servers, server, body, headers, S["warmup"], root)
        r["loadavg"] = [os.getloadavg()]
        for rnd in range(S["rounds"]):
            combos = [(s, k) for s in SERVERS for k in BODIES]
            for n in BATCHES:
                for server, kind in (combos if rnd % 2 == 0 else combos[::-1]):
                    res = load_run(wrk, servers, server, *bodies[(n, kind)], S["duration"], root)
                    r["runs"].setdefault((server, kind, n), []).append(res)
                    log(f"round {rnd + 1}: {server} {kind} {n} rows {res['rps']:,.0f} req/s, p50 {fmt(res['p50'])}, "
                        f"p99 {fmt(res['p99'])}, server CPU {fmt(res['cpu'])}/req, other work "
                        f"{res['others']:.2f} cores")
        # binary against JSON on one server is the closest comparison: more back-to-back pairs of it, ABBA order
        for k in range(S["pairs"]):
            for n in BATCHES:
                for server in SERVERS:
                    for kind in (BODIES if k % 2 == 0 else BODIES[::-1]):
                        res = load_run(wrk, servers, server, *bodies[(n, kind)], S["duration"], root)
                        r["pairs"].setdefault((server, kind, n), []).append(res)
                    log(f"pair {k + 1}: {server} {n} rows: binary {r['pairs'][(server, 'binary', n)][-1]['rps']:,.0f}"
                        f" req/s, JSON {r['pairs'][(server, 'json', n)][-1]['rps']:,.0f} req/s")
        r["loadavg"].append(os.getloadavg())
        r["uptime"].append(uptime())
    finally:
        servers.stop_all()
        nbmlops.set_store(None)
    left = servers.leftovers()
    if left:
        raise RuntimeError(f"server processes still running after stop: {left}")
    return r


# -- report ------------------------------------------------------------------------------------------
def report(S: dict[str, Any], r: dict[str, Any], quick: bool) -> str:
    med = statistics.median
    runs = r["runs"]

    def cell(server: str, kind: str, n: int) -> str:
        got = runs[(server, kind, n)]
        rows = f", {med(x['rps'] for x in got) * n:,.0f} rows/s" if n > 1 else ""
        return (f"{rps(med(x['rps'] for x in got))}{rows} (p50 {fmt(med(x['p50'] for x in got))}, p99 "
                f"{fmt(med(x['p99'] for x in got))}; server CPU {fmt(med(x['cpu'] for x in got))}/req)")

    def ratio(a: tuple[str, str, int], b: tuple[str, str, int], k: str = "rps") -> float:
        return med(x[k] / y[k] for x, y in zip(runs[a], runs[b]))

    def paired(server: str, n: int, k: str = "rps") -> float:
        """binary / JSON on ``server``: median over the rounds' pairs and the extra back-to-back ones."""
        a, b = (server, "binary", n), (server, "json", n)
        return med(x[k] / y[k] for x, y in zip(runs[a] + r["pairs"].get(a, []), runs[b] + r["pairs"].get(b, [])))

    npairs = S["rounds"] + S["pairs"]
    label = {"json": "JSON V2", "binary": "binary V2 (tritonclient's default)"}
    mode = f"Mode: {'--quick (shorter runs, one round)' if quick else 'full'}."
    out = [SUBSECTION, "", machine([*base.PACKAGES, "kserve", "tritonclient"], mode,
                                   before_date=f"Load client: {r['client']}."), "",
           "| rows per request | body | nbmlops | KServe ModelServer | nbmlops / KServe |",
           "| --- | --- | --- | --- | --- |"]
    for n in BATCHES:
        for kind in BODIES:
            out.append(f"| {n} | {label[kind]}, {r['sizes'][(n, kind)]:,} bytes | {cell('nbmlops', kind, n)} | "
                       f"{cell('kserve', kind, n)} | {times(ratio(('nbmlops', kind, n), ('kserve', kind, n)))} |")
        out.append(f"| {n} | binary / JSON: throughput; server CPU per request (medians of {npairs} back-to-back "
                   "pairs) | " + " | ".join(f"{times(paired(s, n))}; {paired(s, n, 'cpu'):.2f}×" for s in SERVERS)
                   + " | — |")
    others = [x["others"] for got in [*runs.values(), *r["pairs"].values()] for x in got]
    spread = "; ".join(f"{s} {k} {n}: " + ", ".join(f"{x['rps']:,.0f}" for x in runs[(s, k, n)])
                       for n in BATCHES for s in SERVERS for k in BODIES)
    each = "; ".join(f"{s} {n} row{'s' if n > 1 else ''}: " + ", ".join(
        f"{x['rps'] / y['rps']:.2f}" for x, y in zip(runs[(s, "binary", n)] + r["pairs"].get((s, "binary", n), []),
                                                    runs[(s, "json", n)] + r["pairs"].get((s, "json", n), [])))
        for n in BATCHES for s in SERVERS)
    d = r["declared"]
    p = r["probe"]
    probe = ("What differs between the bodies inside nbmlops, timed in-process (no HTTP and no other process in "
             "the loop, so less exposed to the machine's noise; best of 3 × 2,000): reading the request's tensors "
             "(`split_body` + `request_tensors`) and writing the answer (`response_body`), per request: " + "; ".join(
                 f"{n} row{'s' if n > 1 else ''} {kind} {fmt(p[(n, kind)]['read'])} + {fmt(p[(n, kind)]['write'])} "
                 f"({p[(n, kind)]['answer']:,}-byte answer)" for n in BATCHES for kind in BODIES) + ". ")
    saved = {n: sum(p[(n, "json")][k] - p[(n, "binary")][k] for k in ("read", "write")) for n in BATCHES}
    probe += ("So binary " + ", ".join(f"{'saves' if v > 0 else 'adds'} {fmt(abs(v))} per request at {n} "
                                       f"row{'s' if n > 1 else ''}" for n, v in saved.items())
              + " there, against the server CPU per request in the table.")
    out += ["", f"LogisticRegression (`max_iter=10000`) fitted on breast_cancer (569 × 30, NumPy arrays), the same "
            f"fitted object in both servers. Medians of {S['rounds']} interleaved round{'s' if S['rounds'] > 1 else ''}"
            f" ({S['duration']:g} s per run, {CLIENTS} kept-alive clients, `wrk -t1 -c{CLIENTS}`, after a "
            f"{S['warmup']:g} s warm-up of each server and body); each round ran every server × body in turn "
            "(order reversed every other round); ratios are medians of the per-round ratios. Both servers got the "
            f"same bytes on `POST {PATH}`, for the input `GET /v2/models/{NAME}` declares ({d['name']}, "
            f"{d['datatype']}, {d['shape']}): binary = the body tritonclient's "
            "`InferenceServerClient.generate_request_body` makes "
            "(JSON header with `binary_data_size` and `\"binary_data_output\": true`, then the raw little-endian "
            "float64s; header `Inference-Header-Content-Length`, no Content-Type, as tritonclient sends it), so "
            "the answers come back binary; JSON = `{\"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\": "
            "[...]}]}` with `Content-Type: application/json`, answered in JSON. Both answer the same three outputs "
            "(`predict` INT64, `probability` and `predict_proba` FP64, from one `predict_proba`): KServe through "
            "benchmarks/_kserve_server.py, a `kserve.Model` on `kserve.ModelServer` (its defaults: one worker, "
            "latency logging on; gRPC off); nbmlops with its defaults (micro-batching, request logging). Checked "
            f"before measuring: {len(r['checked'])} answers (each server × JSON, binary and tritonclient's own "
            "`infer` call × 1 and 32 rows) all give the fitted model's predictions exactly and its probabilities "
            "to 1e-9. Startup to a ready model: "
            + ", ".join(f"{s} {v:.1f} s" for s, v in r["startup"].items()) + ". The machine is shared with other "
            f"engineers' test runs: `uptime` before: `{r['uptime'][0]}`; after: `{r['uptime'][-1]}`; during the runs "
            f"other work used a median {med(others):.2f} cores (from {min(others):.2f} to {max(others):.2f}) of the "
            f"2. Throughput of every run (req/s, in round order): {spread}. Binary / JSON, throughput ratio of each "
            f"back-to-back pair (the rounds', then {S['pairs']} more in ABBA order): {each}.", "", probe, ""]
    return "\n".join(out)


def replace_subsection(text: str, section: str, heading: str, block: str) -> str:
    """``text`` with the ``heading`` subsection of ``section`` (up to the next '## ' or '### ') replaced by
    ``block``, or ``block`` added at the end of the section; the section is added when missing."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, x in enumerate(lines) if x.rstrip("\n") == section), None)
    block = block.rstrip("\n") + "\n"
    if start is None:
        return text.rstrip("\n") + f"\n\n{section}\n\n" + block
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    sub = next((i for i in range(start + 1, end) if lines[i].rstrip("\n") == heading), None)
    if sub is None:
        before, after = "".join(lines[:end]).rstrip("\n") + "\n\n", lines[end:]
    else:
        stop = next((j for j in range(sub + 1, end) if lines[j].startswith(("## ", "### "))), end)
        before, after = "".join(lines[:sub]), lines[stop:]
    return before + block + ("\n" + "".join(after) if after else "")


def current(path: Path) -> str:
    """The subsection as ``path`` has it now ("" when missing), to keep when the rest of the section is rewritten."""
    if not path.exists():
        return ""
    lines = path.read_text().splitlines(keepends=True)
    start = next((i for i, x in enumerate(lines) if x.rstrip("\n") == SUBSECTION), None)
    if start is None:
        return ""
    stop = next((j for j in range(start + 1, len(lines)) if lines[j].startswith(("## ", "### "))), len(lines))
    return "".join(lines[start:stop])


def publish(text: str, out: Path | None) -> None:
    print(text)
    if out is None:
        log("--quick: RESULTS.md left alone (pass --results PATH to write the subsection)")
        return
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(replace_subsection(out.read_text() if out.exists() else "# Benchmarks\n", base.SECTION, SUBSECTION,
                                      text))
    os.replace(tmp, out)
    log(f"wrote the subsection {SUBSECTION!r} of {out}")

