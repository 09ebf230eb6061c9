"""Warm kernels: a pipeline run's notebook steps share a kernel, each in a fresh namespace; the reports
are the ones a new kernel per step gives; a kernel whose step died, timed out or failed is not reused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

import nbmlops
from nbmlops import InvalidInput
from nbmlops.pipelines import runner

from test_pipeline_notebooks import notebook

pytestmark = pytest.mark.process  # notebook steps run in Jupyter kernels


PID = 'import os, nbmlops\nnbmlops.log_metric("pid", os.getpid())'
# step one changes everything a step may change
CHANGE = ('import os, sys, warnings, logging\nimport helpers\nhelpers.seen.append(size)\nleak = "step one"\n'
          'os.environ["NBMLOPS_TEST_LEAK"] = "1"\nos.chdir("..")\nsys.path.insert(0, "/nowhere")\n'
          'warnings.simplefilter("ignore")\nlogging.basicConfig(format="step one: %(message)s")\n'
          'import pandas as pd, numpy as np\npd.set_option("display.max_rows", 3)\nnp.set_printoptions(precision=2)\n'
          'np.random.seed(0)')
PLOT_ONE = ('import matplotlib.pyplot as plt\nplt.rcParams["lines.linewidth"] = 7\nplt.figure()\n'
            '_ = plt.plot([1, 2])')
LOG = 'logging.getLogger("x").warning("plain")'
# step two reports what it sees, as a new kernel would show it
LOOK = ('import os, sys, json, warnings, logging, helpers\nimport pandas as pd, numpy as np\n'
        'import matplotlib.pyplot as plt\n'
        'print(json.dumps({"leak": "leak" in globals(), "env": os.environ.get("NBMLOPS_TEST_LEAK"),\n'
        '    "cwd": os.path.basename(os.getcwd()), "path": "/nowhere" in sys.path, "helpers": helpers.NAME,\n'
        '    "root_handlers": len(logging.root.handlers), "max_rows": pd.get_option("display.max_rows"),\n'
        '    "precision": np.get_printoptions()["precision"], "linewidth": plt.rcParams["lines.linewidth"],\n'
        '    "figures": plt.get_fignums(), "xmode": get_ipython().InteractiveTB.mode,\n'
        '    "exts": sorted(get_ipython().extension_manager.loaded)}, sort_keys=True))')


def normalized(path: Path) -> list[tuple]:
    """The cells of an executed notebook as a reader sees them (ipykernel's per-process file names out)."""
    nb = nbformat.read(path, as_version=4)
    cells = []
    for c in nb.cells:
        outs = []
        for o in c.get("outputs", []):
            text = o.get("text") or json.dumps(o.get("data", {}).get("text/plain", ""))
            outs.append((o["output_type"], re.sub(r"ipykernel_\d+/\d+", "ipykernel_N/N", text),
                         sorted(o.get("data", {}))))
        source = re.sub(r"begin\('[^']*'\)", "begin(CONTEXT)", c.source)  # the step's context file
        cells.append((c.cell_type, source, c.get("execution_count"), outs))
    return cells


def outputs(report: Path) -> dict[str, list[tuple]]:
    return {source: outs for _, source, _, outs in normalized(report.with_suffix(".ipynb"))}


@pytest.fixture
def three(store, tmp_path, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernels' own default: matplotlib's inline backend
    one, two = tmp_path / "nbs" / "one", tmp_path / "nbs" / "two"
    notebook(one / "first.ipynb", CHANGE, "%load_ext nbmlops", "%xmode Minimal", PLOT_ONE, PID, params="size = 1")
    notebook(two / "second.ipynb", LOOK, "%load_ext nbmlops", 'warnings.warn("shown again")', LOG,
             "_ = plt.plot([1, 2, 3])", PID)
    notebook(one / "third.ipynb", "import helpers\nprint(helpers.seen)", PID)
    (one / "helpers.py").write_text('NAME = "one"\nseen = []\n')
    (two / "helpers.py").write_text('NAME = "two"\n')
    return nbmlops.Pipeline("warm", [nbmlops.step(one / "first.ipynb"), nbmlops.step(two / "second.ipynb"),
                                     nbmlops.step(one / "third.ipynb")], params={"size": 2}, workers=1)


def test_steps_share_a_kernel_in_fresh_namespaces_and_report_as_new_kernels_do(three, tmp_path):
    warm = three.run(cache=False, progress=False, reports=tmp_path / "warm")
    fresh = runner.execute(three.plan(), cache=False, reports=tmp_path / "fresh", isolate="kernel")
    assert warm.status == fresh.status == "FINISHED"
    pids = [warm.step_run(s).metrics["pid"] for s in ("first", "second", "third")]
    assert len(set(pids)) == 1, pids  # one process: installed packages imported once
    assert len({fresh.step_run(s).metrics["pid"] for s in ("first", "second", "third")}) == 3
    for s in ("first", "second", "third"):
        w, f = normalized(warm.report(s).with_suffix(".ipynb")), normalized(fresh.report(s).with_suffix(".ipynb"))
        assert w == f, (s, [(a, b) for a, b in zip(w, f) if a != b])
        assert warm.report(s).exists() and warm.steps[s]["report"]["html"]
    second = outputs(warm.report("second"))
    seen = json.loads(second[LOOK][0][1])
    assert "nbmlops" not in seen.pop("exts")  # loaded by step one, not in step two's kernel until it loads it
    assert seen == {"leak": False, "env": None, "cwd": "two", "path": False, "helpers": "two", "root_handlers": 0,
                    "max_rows": 60, "precision": 8, "linewidth": 1.5, "figures": [], "xmode": "Context"}, seen
    assert second["%load_ext nbmlops"] == []  # loads again, silently
    assert "UserWarning: shown again" in second['warnings.warn("shown again")'][0][1]  # warning filters as new
    assert second[LOG][0][1] == "plain\n"  # Python's last-resort handler: no handler left by step one
    assert "image/png" in second["_ = plt.plot([1, 2, 3])"][0][2]  # the inline backend still shows figures
    # helpers.py is imported afresh: step one's append is gone
    assert outputs(warm.report("third"))["import helpers\nprint(helpers.seen)"][0][1] == "[]\n"
    first = nbformat.read(warm.report("first").with_suffix(".ipynb"), as_version=4)
    injected = next(c for c in first.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "size = 2" in injected.source and [c.execution_count for c in first.cells if c.cell_type == "code"] \
        == list(range(1, len(first.cells) + 1))


@pytest.mark.slow
def test_a_kernel_that_died_or_timed_out_is_replaced_and_the_next_step_reuses_the_new_one(store, tmp_path):
    nbs = tmp_path / "nbs"
    once = ('import os, time\nif not os.path.exists("{m}"):\n    open("{m}", "w").close()\n    {act}')
    p = nbmlops.Pipeline("flaky", [
        nbmlops.step(notebook(nbs / "a.ipynb", PID)),
        nbmlops.step(notebook(nbs / "dies.ipynb", once.format(m="died", act="os._exit(1)"), PID), retries=1),
        nbmlops.step(notebook(nbs / "hangs.ipynb", once.format(m="hung", act="time.sleep(60)"), PID), retries=1,
                     timeout=3),
        nbmlops.step(notebook(nbs / "d.ipynb", PID)),
    ], workers=1)
    run = p.run(cache=False, progress=False, reports=tmp_path / "reports")
    assert run.status == "FINISHED"
    assert [run.steps[s]["attempts"] for s in ("a", "dies", "hangs", "d")] == [1, 2, 2, 1]
    for s in ("dies", "hangs"):
        first = nbmlops.get_run(run.steps[s]["runs"][0])
        assert first.status == "FAILED", s
    pid = {s: run.step_run(s).metrics["pid"] for s in ("a", "dies", "hangs", "d")}
    assert pid["dies"] != pid["a"] and pid["hangs"] != pid["dies"]  # a new kernel after each
    assert pid["d"] == pid["hangs"]  # and that one is kept warm


def test_a_failed_step_fails_the_run_and_its_kernel_is_not_reused(store, tmp_path):
    nbs = tmp_path / "nbs"
    p = nbmlops.Pipeline("fails", [
        nbmlops.step(notebook(nbs / "boom.ipynb", PID + '\nraise ValueError("boom")'), retries=1),
    ])
    with pytest.raises(runner.StepFailed, match=r"step boom failed after 2 attempts: ValueError: boom \(cell \d\)"):
        p.run(cache=False, progress=False, reports=tmp_path / "reports")
    attempts = [nbmlops.get_run(r) for r in p.last_run().steps["boom"]["runs"]]
    assert [r.status for r in attempts] == ["FAILED", "FAILED"]
    assert attempts[0].metrics["pid"] != attempts[1].metrics["pid"]


def test_isolate_is_checked(store, tmp_path):
    p = nbmlops.Pipeline("iso", [nbmlops.step(notebook(tmp_path / "n.ipynb", "x = 1"))])
    with pytest.raises(InvalidInput, match=r"isolate is 'namespace' .* or 'kernel' .*, got 'process'"):
        runner.execute(p.plan(), isolate="process")
