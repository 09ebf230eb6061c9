"""Hardening of the ways in and out (issue 16, points 7 and 10, and a small one):

- ``import_mlflow`` from a hostile tracking server (a real ``mlflow server``) or a local sqlite
  store never copies the importer's own files: ``file://`` artifact URIs from a remote server,
  symlinks and paths outside the source's artifact root are refused, run by run;
- every model load in generated code checks the recorded sha256 first: the Kubeflow component
  (run by kfp's local runner) and the KServe batch script refuse a swapped pickle without running it;
- an unbalanced quote in any magic's line is one line (UsageError), not shlex's traceback.
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

MAGICS = ["drift", "features", "pipeline", "register", "serve", "nbmlops"]


# -- magics: an unterminated quote ---------------------------------------------------------------------
@pytest.mark.parametrize("magic", MAGICS)
def test_unterminated_quote_is_one_line_in_every_magic(ip, magic, capsys):
    with pytest.raises(UsageError, match=rf"%{magic}: No closing quotation .*close the quote"):
        ip.run_line_magic(magic, '"unterminated')


def test_unterminated_quote_in_track_is_one_line(ip):
    with pytest.raises(UsageError, match=r"%track: No closing quotation"):
        ip.run_cell_magic("track", '-e "unterminated', "x = 1\n")
