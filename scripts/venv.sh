# Sourced by scripts/main and scripts/test: create (or reuse) the project venv .venv/ with the OS's python3
# (>= 3.11; Debian's pip is "externally managed", so nothing is installed outside the venv) and install
# nbmlops into it, editable, with the extras asked for. Sets PY (the venv's python) and puts .venv/bin first
# on PATH, so the kernels, model servers and pipeline steps the notebooks start use the venv too.

VENV="$PWD/.venv"
PY="$VENV/bin/python"

venv_fail() { echo "error: $*" >&2; exit 2; }

ensure_venv() {
    if [ -x "$PY" ] && "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        return
    fi
    command -v python3 >/dev/null 2>&1 \
        || venv_fail "no python3 on PATH: install Python >= 3.11 (Debian/Ubuntu: apt-get install python3 python3-venv)"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || venv_fail "nbmlops needs Python >= 3.11; python3 is $(python3 --version 2>&1)"
    echo "creating the project venv $VENV ($(python3 --version 2>&1))"
    rm -rf "$VENV"
    python3 -m venv "$VENV" \
        || venv_fail "python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv), then run this again"
}

# install_extras EXTRAS: pip install -e ".[EXTRAS]" into the venv, skipped when that was already done since
# pyproject.toml last changed (a stamp in the venv). pip's noise here ("Location ... is ignored") is filtered.
install_extras() {
    local stamp="$VENV/.nbmlops-installed-${1//,/-}"
    if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
        return 0
    fi
    echo "installing nbmlops[$1] into $VENV (pip; a few minutes the first time)"
    if "$PY" -m pip install -q --disable-pip-version-check -e ".[$1]" 2>&1 \
            | { grep -v -e "is ignored" -e "^$" || true; }; then
        touch "$stamp"
    else
        return 1
    fi
}

ensure_venv
export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
unset PYTHONHOME
