"""The request log rotates and stays bounded, and survives a cut line."""

from __future__ import annotations

from nbmlops.serving.reqlog import RequestLog, read_requests


def test_log_rotates_keeps_the_newest_files_and_skips_a_cut_line(tmp_path):
    log = RequestLog(tmp_path, max_bytes=2_000, keep=3)
    for i in range(400):
        log.add({"t": i, "id": f"{i:032x}", "v": 1, "lat": 0.5, "rows": [[1.0, 2.0]], "out": [0]})
        if i % 20 == 19:
            log.flush()
    log.close()
    files = sorted(tmp_path.glob("requests-*.jsonl"))
    assert len(files) == 3 and all(f.stat().st_size < 4_000 for f in files)
    records = read_requests(tmp_path)
    assert [r["t"] for r in records] == list(range(records[0]["t"], 400))  # the newest, in order, no gaps
    with open(files[-1], "ab") as f:
        f.write(b'{"t": 400, "id": "cut')
    assert len(read_requests(tmp_path)) == len(records)
