"""Schema versions: an old store opens or is migrated, a newer or foreign one is refused,
never silently misread (ARCHITECTURE.md, "The store")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nbmlops
import nbmlops.store as store_mod
from nbmlops.errors import StoreError
from nbmlops.store import MIGRATIONS, SCHEMA, Store


def _marker(root: Path) -> dict:
    return json.loads((root / "STORE.json").read_text())


def _set_marker(root: Path, meta: object) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "STORE.json").write_text(json.dumps(meta))


def _fresh_process_view(monkeypatch) -> None:
    """Forget the stores this process has opened, as a newly started kernel would."""
    monkeypatch.setattr(store_mod, "_stores", {})


def _make_store_with_a_run(store) -> str:
    with nbmlops.start_run(experiment="old", name="r1") as run:
        nbmlops.log_params({"a": 1})
        nbmlops.log_metric("loss", 0.5)
    return run.id


def _register_migrations(monkeypatch, calls: list) -> None:
    """A migration for every version below SCHEMA that records its call and what it saw."""
    for v in range(SCHEMA):
        def migrate(s: Store, v: int = v) -> None:
            calls.append((v, s.root, _marker(s.root)["schema"]))
        monkeypatch.setitem(MIGRATIONS, v, migrate)


# -- the marker ---------------------------------------------------------------------------

def test_a_new_store_has_a_marker_with_the_schema_version(store):
    assert not store.exists()
    _make_store_with_a_run(store)
    assert isinstance(SCHEMA, int) and SCHEMA >= 1
    assert _marker(store.root) == {"format": "nbmlops", "schema": SCHEMA}
    info = nbmlops.store_info()
    assert info["schema"] == SCHEMA and info["runs"] == 1


def test_documents_carry_the_schema_version(store):
    run_id = _make_store_with_a_run(store)
    exps = json.loads((store.root / "db" / "experiments.json").read_text())["docs"].values()
    assert [e["schema"] for e in exps] == [SCHEMA]
    shards = list((store.root / "db" / "runs").glob("*/*.json"))
    runs = [d for p in shards for d in json.loads(p.read_text())["docs"].values()]
    assert [(d["id"], d["schema"]) for d in runs] == [(run_id, SCHEMA)]


# -- a newer store ------------------------------------------------------------------------

@pytest.mark.parametrize("opener", ["store_info", "start_run", "set_experiment", "ensure"])
def test_a_store_with_a_newer_schema_is_refused_with_upgrade_advice(store, monkeypatch, opener):
    _make_store_with_a_run(store)
    _set_marker(store.root, {"format": "nbmlops", "schema": SCHEMA + 1})
    _fresh_process_view(monkeypatch)
    before = sorted(p for p in store.root.rglob("*") if not p.name.endswith(".lock"))
    with pytest.raises(StoreError, match=rf"schema {SCHEMA + 1}.*upgrade nbmlops"):
        if opener == "store_info":
            nbmlops.store_info()
        elif opener == "start_run":
            nbmlops.start_run(experiment="new")
        elif opener == "set_experiment":
            nbmlops.set_experiment("new")
        else:
            Store(store.root).ensure()
    assert _marker(store.root)["schema"] == SCHEMA + 1, "the marker of a newer store was rewritten"
    after = sorted(p for p in store.root.rglob("*") if not p.name.endswith(".lock"))
    assert after == before, "something was written into a store this version cannot read"


@pytest.mark.parametrize("reader", ["search_runs", "get_run", "list_experiments", "get_experiment"])
def test_read_calls_refuse_a_store_with_a_newer_schema(store, monkeypatch, reader):
    """Regression: read-only calls used current_store(create=False), which skipped the check."""
    run_id = _make_store_with_a_run(store)
    _set_marker(store.root, {"format": "nbmlops", "schema": SCHEMA + 1})
    _fresh_process_view(monkeypatch)
    with pytest.raises(StoreError, match="upgrade"):
        if reader == "search_runs":
            nbmlops.search_runs()
        elif reader == "get_run":
            nbmlops.get_run(run_id)
        elif reader == "list_experiments":
            nbmlops.list_experiments()
        else:
            nbmlops.get_experiment("old")


# -- a marker that is not ours -------------------------------------------------------------

@pytest.mark.parametrize("content", [
    {"format": "mlflow", "schema": 1},
    {"schema": 1},
    {"format": "nbmlops"},
    {"format": "nbmlops", "schema": "one"},
    ["nbmlops", 1],
    None,
    "not json at all {",
    b"\xff\xfe\x00binary",
])
def test_a_marker_that_is_not_ours_is_refused(store, content):
    store.root.mkdir(parents=True)
    marker = store.root / "STORE.json"
    if isinstance(content, bytes):
        marker.write_bytes(content)
    elif isinstance(content, str):
        marker.write_text(content)
    else:
        marker.write_text(json.dumps(content))
    original = marker.read_bytes()
    with pytest.raises(StoreError, match="not an nbmlops store marker"):
        nbmlops.store_info()
    with pytest.raises(StoreError):
        nbmlops.start_run(experiment="x")
    assert marker.read_bytes() == original
    assert not (store.root / "db").exists(), "nbmlops wrote into a folder that is not its store"


def test_a_foreign_marker_is_refused_under_python_dash_O(tmp_path):
    """Regression: the format check was an `assert`, which `python -O` strips."""
    root = tmp_path / "foreign"
    _set_marker(root, {"format": "mlflow", "schema": 1})
    code = ("import nbmlops\n"
            "try:\n    nbmlops.store_info()\nexcept nbmlops.StoreError as e:\n    print('refused', e)\n"
            "else:\n    print('accepted')\n")
    env = {**os.environ, "NBMLOPS_STORE": str(root)}
    out = subprocess.run([sys.executable, "-O", "-c", code], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused"), out.stdout


# -- an older store is migrated --------------------------------------------------------------

def test_an_older_store_is_migrated_once_and_the_new_version_recorded(store, monkeypatch):
    run_id = _make_store_with_a_run(store)
    _set_marker(store.root, {"format": "nbmlops", "schema": 0})
    calls: list = []
    _register_migrations(monkeypatch, calls)
    _fresh_process_view(monkeypatch)

    info = nbmlops.store_info()  # the first call of a new process opens (and migrates) the store
    assert calls == [(v, store.root, v) for v in range(SCHEMA)], "each migration runs once, in order"
    assert _marker(store.root) == {"format": "nbmlops", "schema": SCHEMA}
    assert info["runs"] == 1 and nbmlops.get_run(run_id).params == {"a": 1}

    _fresh_process_view(monkeypatch)
    nbmlops.store_info()
    Store(store.root).ensure()
    assert len(calls) == SCHEMA, "a migrated store was migrated again"


def test_an_older_store_without_a_migration_is_refused(store, monkeypatch):
    _set_marker(store.root, {"format": "nbmlops", "schema": 0})
    monkeypatch.delitem(MIGRATIONS, 0, raising=False)
    with pytest.raises(StoreError, match="no migration from store schema 0"):
        nbmlops.start_run(experiment="x")
    assert _marker(store.root)["schema"] == 0
    assert not (store.root / "db").exists()


def test_a_failed_migration_leaves_the_old_version_and_is_retried(store, monkeypatch):
    _set_marker(store.root, {"format": "nbmlops", "schema": 0})
    calls: list = []
    _register_migrations(monkeypatch, calls)

    def broken(s: Store) -> None:
        calls.append("broken")
        raise RuntimeError("disk full")

    monkeypatch.setitem(MIGRATIONS, 0, broken)
    with pytest.raises(RuntimeError, match="disk full"):
        Store(store.root).ensure()
    assert _marker(store.root)["schema"] == 0, "a migration that failed was recorded as done"

    _register_migrations(monkeypatch, calls)
    Store(store.root).ensure()
    assert calls[0] == "broken" and [c[0] for c in calls[1:]] == list(range(SCHEMA))
    assert _marker(store.root)["schema"] == SCHEMA


MIGRATING_OPENER = r'''
import os, sys, time
from pathlib import Path

import nbmlops
from nbmlops.store import MIGRATIONS, SCHEMA

calls, go = Path(sys.argv[1]), Path(sys.argv[2])

def make(v):
    def migrate(store):
        with open(calls, "a") as f:
            f.write(f"{v} {os.getpid()}\n")
        time.sleep(0.3)  # a slow migration: the other process arrives while it runs
    return migrate

for v in range(SCHEMA):
    MIGRATIONS[v] = make(v)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
with nbmlops.start_run(experiment="after-migration"):
    nbmlops.log_metric("x", 1)
print(nbmlops.store_info()["runs"])
'''


def test_two_processes_opening_an_old_store_migrate_it_once(store, tmp_path):
    _set_marker(store.root, {"format": "nbmlops", "schema": 0})
    script = tmp_path / "opener.py"
    script.write_text(MIGRATING_OPENER)
    calls, go = tmp_path / "calls.txt", tmp_path / "go"
    env = {**os.environ, "NBMLOPS_STORE": str(store.root)}
    procs = [subprocess.Popen([sys.executable, str(script), str(calls), str(go)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        go.touch()
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    lines = calls.read_text().splitlines()
    assert sorted(int(line.split()[0]) for line in lines) == list(range(SCHEMA)), lines
    assert _marker(store.root)["schema"] == SCHEMA
    assert nbmlops.store_info()["runs"] == 2


def test_read_calls_migrate_an_older_store_first(store, monkeypatch):
    _make_store_with_a_run(store)
    _set_marker(store.root, {"format": "nbmlops", "schema": 0})
    calls: list = []
    _register_migrations(monkeypatch, calls)
    _fresh_process_view(monkeypatch)
    nbmlops.search_runs()  # a new kernel whose first call is a search
    assert [c[0] for c in calls] == list(range(SCHEMA)), "schema-0 documents were read without migrating them"
