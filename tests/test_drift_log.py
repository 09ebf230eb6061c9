"""A logged drift report keeps its saved HTML page in the store, found again by the report's id."""

from __future__ import annotations

import pytest
from _drift_data import frames

import nbmlops
from nbmlops import InvalidInput, NotFound
from nbmlops.monitoring import log


def test_logged_report_keeps_its_page_as_a_blob_found_by_id(store):
    ref, cur = frames(400, seed=31, numeric=2, categorical=1)
    report = nbmlops.drift_report(ref, cur)
    doc = report.log()
    assert doc["html"]["size"] > 0 and store.blobs.path(doc["html"]["sha256"]).exists()
    page = log.report_html(doc["id"])
    assert page == report.html(full_page=True) and page.startswith("<!DOCTYPE html>")
    assert log.get_summary(doc["id"])["summary"] == doc["summary"]
    assert nbmlops.drift_history().id.tolist() == [doc["id"]]


def test_report_html_names_unknown_and_malformed_ids(store):
    with pytest.raises(NotFound, match="no drift report with id"):
        log.report_html("0" * 32)
    with pytest.raises(InvalidInput, match="32 hex digits"):
        log.report_html("../../etc/passwd")


def test_report_logged_without_a_page_says_so(store):
    from tinydb import where

    ref, cur = frames(300, seed=32, numeric=1, categorical=1)
    doc = nbmlops.drift_report(ref, cur).log()
    (path,) = (store.root / "db" / "drift").glob("*.json")
    with nbmlops.store.DocFile(path).table() as t:  # a summary written by an older nbmlops
        t.update({"html": None}, where("id") == doc["id"])
    with pytest.raises(NotFound, match="logged before reports kept their HTML"):
        log.report_html(doc["id"])
