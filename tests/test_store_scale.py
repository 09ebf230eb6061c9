"""Reading metric logs in blocks, and exporting runs with many points.

The block reader parses a block of lines with one ``json.loads``; damaged lines (cut by a crash,
garbage, wrong shapes, NaN, integers beyond float range) must be skipped exactly as the line-by-line
reader did. The export streams a run's points in batches: every point must arrive, once, in order.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest

import nbmlops
from nbmlops.store import AppendLog, logs, read_blocks, read_lines
from nbmlops.tracking.stale import metric_points


def _line_by_line(path: Path) -> tuple[list, int]:
    """The reader this round replaced: each line of the file parsed alone, the last one only if it ends."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n")
    out, skipped = [], int(end < len(data) - 1)
    for raw in data[: end + 1].splitlines() if end >= 0 else []:
        try:
            out.append(json.loads(raw))
        except ValueError:
            skipped += 1
    return out, skipped


def _points_line_by_line(path: Path) -> list:
    items, _ = _line_by_line(path)
    return [p for p in items if isinstance(p, list) and len(p) == 4 and type(p[0]) is str and type(p[1]) is int
            and type(p[2]) is int and type(p[3]) in (int, float) and abs(p[3]) <= sys.float_info.max
            and math.isfinite(p[3])]


def _read(path: Path) -> tuple[list, int]:
    counts: dict[str, int] = {}
    return list(read_lines(path, counts)), counts.get("skipped", 0)


DAMAGED = [
    b'["loss",0,1,0.5]\n',
    b'["loss",1,2,0.25]\n',
    b'["loss",2,3,0.1',  # cut by a kill -9: AppendLog ends it with a newline before the next record
    b'\n["loss",3,4,0.05]\n',
    b'\n',  # a blank line
    b'   \n',
    b'garbage that is not json\n',
    b'["loss",4,5,NaN]\n',  # json reads NaN and Infinity; log_metric never writes them
    b'["loss",5,6,Infinity]\n',
    b'["loss",6,7,1' + b'0' * 400 + b']\n',  # an integer beyond float range
    b'["loss",7,8]\n',  # wrong shape
    b'{"key":"loss","step":8}\n',
    b'["loss",9.5,10,1.0]\n',  # a float step
    b'["loss",true,11,1.0]\n',
    b'[1,2],[3,4]\n',  # two values on a line
    b'[1,\n',  # a line that would join with the next one
    b'2]\n',
    b'\x00\x00\x00\x00\n',  # a page of zeros after a power cut
    b'["caf\xc3\xa9",10,12,7]\n',  # UTF-8 key, an integer value
    b'["\xff\xfe",11,13,1.0]\n',  # not UTF-8
    b'["loss",12,14,0.01]\r\n',  # a CRLF line
    b'["loss",13,15,0.0]\n',
    b'["loss",14,16,0.3',  # the last line, still being written
]


def test_block_reader_skips_damaged_lines_as_line_by_line_did(tmp_path):
    log = tmp_path / "m.jsonl"
    log.write_bytes(b"".join(DAMAGED))
    items, skipped = _read(log)
    assert (items, skipped) == _line_by_line(log)
    assert skipped == 10  # cut, blank, spaces, garbage, two on a line, the joinable pair, zeros, not UTF-8, last
    bad = [0]
    points = list(metric_points(log, bad))
    assert points == _points_line_by_line(log)
    assert [p[1] for p in points] == [0, 1, 3, 10, 12, 13]
    assert points[3] == ["café", 10, 12, 7]
    assert bad[0] == len(DAMAGED) - len(points)  # every line that is not a point: cut, unparseable or wrong


def test_a_clean_log_is_read_whole_and_equal_to_line_by_line(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "_BLOCK", 64 << 10)  # many blocks from a small file
    log = tmp_path / "m.jsonl"
    rng = random.Random(1)
    lines = [f'[{json.dumps(k)},{i},{1_700_000_000_000 + i},{rng.random()!r}]\n'
             for i in range(20_000) for k in ("loss",)]
    lines += ['["val/acc",0,1,3]\n', '["a \\"quoted\\" key, [odd]",1,2,-0.0]\n']
    log.write_text("".join(lines))
    assert log.stat().st_size > 10 * logs._BLOCK  # several blocks, lines across their edges
    items, skipped = _read(log)
    assert skipped == 0 and items == _line_by_line(log)[0] and len(items) == 20_002
    assert sum(len(b) for b in read_blocks(log)) == 20_002
    assert items[-1] == ['a "quoted" key, [odd]', 1, 2, -0.0]


def test_damage_in_any_block_and_at_block_edges(tmp_path, monkeypatch):
    """A damaged line in a later block falls back for that block only; a line cut at a block edge
    is carried into the next block, not lost."""
    monkeypatch.setattr(logs, "_BLOCK", 4096)  # about 30 blocks, damage near their edges too
    log = tmp_path / "m.jsonl"
    base = [f'["loss",{i},{i},{i / 7!r}]\n'.encode() for i in range(3_000)]
    for seed in range(60):
        rng = random.Random(seed)
        lines = list(base)
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(lines))
            line = lines[i]
            kind = rng.randrange(4)
            if kind == 0:  # cut, as a crash leaves it (then ended by the next writer)
                lines[i] = line[: rng.randrange(1, len(line) - 1)] + b"\n"
            elif kind == 1:  # one byte changed
                j = rng.randrange(len(line) - 1)
                lines[i] = line[:j] + bytes([rng.randrange(256)]) + line[j + 1:]
            elif kind == 2:  # zeros
                lines[i] = b"\x00" * (len(line) - 1) + b"\n"
            else:  # an empty line
                lines[i] = b"\n"
        data = b"".join(lines)
        if rng.random() < 0.5:
            data = data[: rng.randrange(len(data) - 200, len(data))]  # the file cut anywhere near its end
        log.write_bytes(data)
        assert _read(log) == _line_by_line(log), f"seed {seed}"
        assert list(metric_points(log)) == _points_line_by_line(log), f"seed {seed}"


def test_missing_and_empty_logs_read_as_nothing(tmp_path):
    assert _read(tmp_path / "missing.jsonl") == ([], 0)
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert _read(tmp_path / "empty.jsonl") == ([], 0)
    (tmp_path / "cut.jsonl").write_bytes(b'["loss",0,1,')
    assert _read(tmp_path / "cut.jsonl") == ([], 1)


def test_a_log_cut_by_a_crash_reads_like_before_after_the_next_append(tmp_path):
    log = tmp_path / "m.jsonl"
    log.write_bytes(b'["loss",0,1,0.5]\n["loss",1,2,0.')
    w = AppendLog(log)  # ends the cut line, as the next writer does
    w.write('["loss",2,3,0.25]\n')
    w.close()
    assert list(metric_points(log)) == [["loss", 0, 1, 0.5], ["loss", 2, 3, 0.25]]
    assert _read(log)[1] == 1


def test_log_metric_refuses_an_integer_no_float_can_hold(tmp_path):
    nbmlops.set_store(tmp_path / "store")
    try:
        with nbmlops.start_run() as run:
            with pytest.raises(nbmlops.errors.InvalidInput, match="too large for a float"):
                nbmlops.log_metric("x", 10**400)
            nbmlops.log_metric("x", 10**300)
        assert nbmlops.get_run(run.id).metric_history()["value"].tolist() == [10**300]
    finally:
        nbmlops.set_store(None)


# -- export of a run with many points --------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    pytest.importorskip("mlflow")
    from mlflow_support import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def test_export_of_a_run_with_many_points_is_complete_and_in_order(tmp_path, mlflow_uri):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    nbmlops.set_store(tmp_path / "store")
    try:
        n = 3_456  # four batches of 1,000 and one partial, over two metrics
        with nbmlops.start_run(experiment="long") as run:
            for i in range(n):
                nbmlops.log_metric("loss", 1.0 / (i + 1), step=i, timestamp=1_700_000_000_000 + i)
                if i % 5 == 0:
                    nbmlops.log_metric("acc", i // 5, step=i, timestamp=1_700_000_000_000 + i)
            nbmlops.log_metric("loss", 0.5, step=3, timestamp=1_700_000_100_000)  # a second point at one step
        # a child whose parent sits in a later shard: the parent is exported first all the same
        pairs = 0
        while True:
            pairs += 1
            with nbmlops.start_run(experiment="long", name="parent") as parent, \
                    nbmlops.start_run(experiment="long", name="child", nested=True) as child:
                nbmlops.log_metric("fold", 1.0)
            if child.id[:2] < parent.id[:2]:
                break
        with open(nbmlops.store.current_store().metric_log(run.id), "ab") as f:
            f.write(b"not a point\n")  # damage: skipped, the rest still goes
        summary = nbmlops.export_mlflow(mlflow_uri, experiment="long", registry=False)
        expected_points = n + n // 5 + (1 if n % 5 else 0) + 1
        assert summary["metric_points"] == expected_points + pairs  # and the fold metric of each child
        c = MlflowClient(mlflow_uri)
        exp = c.get_experiment_by_name("long")
        found = {r.data.tags["nbmlops.run_id"]: r for r in c.search_runs([exp.experiment_id],
                                                                         run_view_type=ViewType.ALL,
                                                                         max_results=1000)}
        ours = nbmlops.search_runs("long")
        assert set(found) == set(ours["run_id"])
        mine = found[run.id]
        for key in ("loss", "acc"):
            got = [(m.step, m.timestamp, m.value) for m in c.get_metric_history(mine.info.run_id, key)]
            local = nbmlops.get_run(run.id).metric_history(key)
            want = list(zip(local["step"].tolist(), (local["timestamp"].astype("int64") // 10**6).tolist(),
                            local["value"].astype(float).tolist()))
            assert sorted(got) == sorted(want) and len(got) == len(want)
        assert len(c.get_metric_history(mine.info.run_id, "loss")) == n + 1
        assert found[child.id].data.tags["mlflow.parentRunId"] == found[parent.id].info.run_id
        again = nbmlops.export_mlflow(mlflow_uri, experiment="long", registry=False)
        assert again.get("runs_unchanged") == len(found) and not again.get("metric_points")
        assert not again.get("runs_created")
    finally:
        nbmlops.set_store(None)
