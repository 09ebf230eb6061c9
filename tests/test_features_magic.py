"""%features through a real IPython shell, as a notebook user drives it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import nbmlops

T0 = pd.Timestamp("2024-03-01")


def files(store):
    if not store.root.exists():
        return {}
    return {str(p.relative_to(store.root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(store.root.rglob("*")) if p.is_file()}


@pytest.fixture
def session(ip, tmp_path):
    """A shell with user activity data, an entity DataFrame and a parquet copy of the data."""
    rng = np.random.default_rng(0)
    activity = pd.DataFrame({"user_id": rng.integers(1, 6, 40),
                             "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 10 * 24, 40), unit="h"),
                             "clicks": rng.integers(0, 50, 40), "spend": rng.normal(20, 5, 40).round(2)})
    activity.to_parquet(tmp_path / "activity.parquet")
    ip.user_ns.update(
        activity=activity,
        labels=pd.DataFrame({"user_id": [1, 2, 3, 99], "event_timestamp": [T0 + pd.Timedelta(days=5)] * 4,
                             "churned": [0, 1, 0, 1]}),
        labels_str=pd.DataFrame({"user_id": ["1"], "event_timestamp": [T0]}),
        labels_no_time=pd.DataFrame({"user_id": [1], "when": [1700000000]}),
        activity_str_keys=activity.assign(user_id=activity.user_id.astype(str)),
        activity_fewer=activity.drop(columns=["spend"]),
        not_a_frame=[1, 2, 3],
    )
    for name in ("train", "served", "out"):
        ip.user_ns.pop(name, None)
    return ip


def test_a_whole_session(session, store, capsys, tmp_path):
    ip = session
    ip.run_line_magic("features", "apply activity --name user_activity --entity user_id --ttl 3d --online")
    assert "created feature view user_activity (2 features, keys user_id, ttl 3d" in capsys.readouterr().out
    ip.run_line_magic("features", f"apply {tmp_path / 'activity.parquet'} --name from_file --entity user_id "
                                  "--features clicks --ttl 1d")
    ip.run_line_magic("features", "apply activity --name user_activity --entity user_id --ttl 3d --online")
    assert "unchanged feature view user_activity" in capsys.readouterr().out
    ip.run_line_magic("features", "service churn user_activity:clicks,user_activity:spend")
    ip.run_line_magic("features", "get churn --entity-df labels -o train")
    assert "train: 4 rows × 5 columns" in capsys.readouterr().out
    train = ip.user_ns["train"]
    expected = nbmlops.get_historical_features(ip.user_ns["labels"], ["user_activity:clicks", "user_activity:spend"])
    pd.testing.assert_frame_equal(train, expected)
    assert train["clicks"].isna().tolist()[-1] and train["clicks"].notna().any()  # user 99 is unknown
    shown = ip.run_line_magic("features", "get user_activity:clicks from_file:clicks --entity-df labels --full-names")
    assert list(shown.columns)[-2:] == ["user_activity__clicks", "from_file__clicks"]
    ip.run_line_magic("features", "materialize --start 2024-03-01 --end 2024-03-20")
    assert "materialized user_activity: 5 entities" in capsys.readouterr().out
    served = ip.run_line_magic("features", "online churn --entity user_id=1,2,99")
    assert served["user_id"].tolist() == [1, 2, 99] and served["clicks"].isna().tolist() == [False, False, True]
    ip.run_line_magic("features", "online user_activity:clicks --entity user_id=3 -o served")
    assert ip.user_ns["served"]["clicks"].notna().all()
    ip.run_line_magic("features", "materialize")  # incremental, up to now
    ip.run_line_magic("features", "list")
    ip.run_line_magic("features", "show user_activity")
    ip.run_line_magic("features", "show churn")
    out = capsys.readouterr().out
    assert "FeatureView user_activity" in out and "FeatureService churn" in out and "view      from_file" in out


def test_show_renders_the_view_card_in_a_notebook(session, store):
    ip = session
    ip.run_line_magic("features", "apply activity --name user_activity --entity user_id")
    from IPython.core.formatters import DisplayFormatter

    view = nbmlops.get_feature_view("user_activity")
    data, _ = DisplayFormatter().format(view)
    assert "feature view user_activity" in data["text/html"] and "offline only" in data["text/html"]


BAD = [
    ("apply activity --name v2 --entity user_id --timestamp ts", "no event timestamp column 'ts'"),
    ("apply activity --name v2 --entity user_id --created nope", "no created timestamp column 'nope'"),
    ("apply activity --name v2 --entity user_id --ttl 7q", "cannot read ttl '7q'"),
    ("apply activity --name v2 --entity uid", "no join key column 'uid'"),
    ("apply activity --name v2 --entity user_id --features nope", "has no column 'nope'"),
    ("apply nosuchvar --name v2 --entity user_id", "no DataFrame variable or file named 'nosuchvar'"),
    ("apply not_a_frame --name v2 --entity user_id", "not_a_frame is a list, not a DataFrame"),
    ("apply activity --name 'bad name' --entity user_id", "invalid feature view name"),
    ("apply activity --entity user_id", "needs --name"),
    ("apply activity --name v2", "needs --entity"),
    ("apply activity_str_keys --name user_activity --entity user_id", "is int64, but the DataFrame .* holds string values"),
    ("apply activity_fewer --name user_activity --entity user_id --ttl 3d --online", "drops feature spend"),
    ("get user_activity:nope --entity-df labels -o out", "has no feature 'nope'"),
    ("get nope:clicks --entity-df labels -o out", "unknown feature view 'nope'"),
    ("get nope --entity-df labels -o out", "unknown feature view 'nope'.*services: none"),
    ("get user_activity --entity-df nolabels -o out", "no DataFrame variable"),
    ("get user_activity --entity-df labels_str -o out", "holds str values, but the key is int64"),
    ("get user_activity --entity-df labels_no_time -o out", "needs the time of each row"),
    ("get user_activity --entity-df labels -o 1bad", "-o takes a variable name"),
    ("get user_activity --entity-df labels --start 2024-01-01", "does not take --start"),
    ("get user_activity", "usage: %features get"),
    ("materialize --start yesterdayish", "cannot read start 'yesterdayish'"),
    ("materialize --start 2024-03-05 --end 2024-03-01", "is after end"),
    ("materialize --views nope", "unknown feature view 'nope'"),
    ("materialize --views from_file", "offline only"),
    ("online user_activity:clicks --entity user_id=abc", "'abc' is not an integer, but the key is int64"),
    ("online user_activity:clicks --entity uid=1", "uid is not a join key"),
    ("online user_activity:clicks --entity user_id", "--entity takes KEY=V1,V2"),
    ("online nope:x --entity user_id=1", "unknown feature view 'nope'"),
    ("online user_activity:clicks --entity user_id=1 -o out --ttl 3d", "does not take --ttl"),
    ("service svc2 user_activity:nope", "has no feature 'nope'"),
    ("service svc2", "usage: %features service"),
    ("show nope", "unknown feature view 'nope'"),
    ("bogus", "unknown %features action 'bogus'"),
    ("list extra", "usage: %features list"),
    ("apply activity --name v2 --entity user_id --bogus", "unrecognized arguments"),
]


@pytest.mark.parametrize("line, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_usage_line_and_writes_nothing(session, store, tmp_path, line, message):
    ip = session
    ip.run_line_magic("features", "apply activity --name user_activity --entity user_id --ttl 3d --online")
    ip.run_line_magic("features", f"apply {tmp_path / 'activity.parquet'} --name from_file --entity user_id")
    ip.run_line_magic("features", "materialize --start 2024-03-01 --end 2024-03-05")
    before = files(store)
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("features", line)
    assert files(store) == before
    assert "out" not in ip.user_ns


def test_bad_input_shows_one_line_and_no_traceback(session, store, capsys):
    result = session.run_cell("%features apply activity --name v --entity user_id --ttl soon")
    text = "".join(capsys.readouterr())
    assert "UsageError" in text and "cannot read ttl" in text and "Traceback" not in text
    assert result.error_in_exec is not None and not store.root.exists()


def test_help_lists_the_subcommands(session):
    doc = session.find_line_magic("features").__doc__
    for action in ("apply", "list", "show", "get", "materialize", "online", "service"):
        assert f"%features {action}" in doc
