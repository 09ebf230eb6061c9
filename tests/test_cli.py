"""The nbmlops command line, and auto-loading the extension in real kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbmlops


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "nbmlops.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_info_and_runs(store):
    with nbmlops.start_run(experiment="e", name="first") as run:
        run.log_metric("acc", 0.75)
    out = cli("info").stdout
    assert str(store.root) in out and "1 finished" in out
    out = cli("runs", "-f", "metrics.acc > 0.5").stdout
    assert "first" in out and "0.75" in out
    bad = cli("runs", "-f", "metrics.acc >>> 1")
    assert bad.returncode == 2 and "must be NAME OPERATOR VALUE" in bad.stderr and "Traceback" not in bad.stderr


def test_autoload_config_is_merged_and_loads_in_a_real_kernel(tmp_path):
    from jupyter_client.manager import start_new_kernel

    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.json").write_text(json.dumps(
        {"InteractiveShellApp": {"extensions": ["other_ext"], "exec_lines": ["x = 1"]}}))
    assert cli("autoload", "on", "--dir", str(profile)).returncode == 0
    config = json.loads((profile / "ipython_kernel_config.json").read_text())
    assert config["InteractiveShellApp"] == {"extensions": ["other_ext", "nbmlops"], "exec_lines": ["x = 1"]}
    config["InteractiveShellApp"]["extensions"] = ["nbmlops"]  # other_ext does not exist here
    (profile / "ipython_kernel_config.json").write_text(json.dumps(config))
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")})
    try:
        reply = kc.execute_interactive("print(get_ipython().find_cell_magic('track') is not None, x)", timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert cli("autoload", "off", "--dir", str(profile)).returncode == 0
    assert json.loads((profile / "ipython_kernel_config.json").read_text())["InteractiveShellApp"]["extensions"] == []
