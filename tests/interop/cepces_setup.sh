#!/usr/bin/env bash
# Make a cepces source tree and a Python venv for the cepces interop probe
# (tests/interop/test_wstep_cepces.py). cepces (openSUSE's CES client, the certmonger helper
# `cepces-submit`) is in no package registry, so CI cannot install it; run this by hand.
#
# usage: tests/interop/cepces_setup.sh [SOURCE] [SRC_DIR] [VENV_DIR]
#   SOURCE   a git repository of github.com/openSUSE/cepces (bare mirror or clone), a release
#            tarball (.tar.gz), or an existing checkout directory.
#            Default: $CEPCES_MIRROR, else https://github.com/openSUSE/cepces.git
#   SRC_DIR  where the source tree goes (default $CEPCES_SRC, else ~/.cache/certgate/cepces-src)
#   VENV_DIR the venv for cepces' dependencies, outside certgate's tree
#            (default $CEPCES_VENV, else ~/.cache/certgate/cepces-venv)
# The tag is $CEPCES_TAG (default v0.3.17). Needs git (for a repository), python3 >= 3.9 and,
# for the gssapi wheel when none fits, libkrb5-dev (Debian) / krb5-devel (Fedora).
#
# Then run the probe:
#   CEPCES_SRC=SRC_DIR CEPCES_PYTHON=VENV_DIR/bin/python \
#     .venv/bin/pytest -v tests/interop/test_wstep_cepces.py
set -euo pipefail

tag=${CEPCES_TAG:-v0.3.17}
source=${1:-${CEPCES_MIRROR:-https://github.com/openSUSE/cepces.git}}
src=${2:-${CEPCES_SRC:-$HOME/.cache/certgate/cepces-src}}
venv=${3:-${CEPCES_VENV:-$HOME/.cache/certgate/cepces-venv}}
python=${PYTHON:-python3}

if [ -e "$src/bin/cepces-submit" ]; then
    echo "source tree: $src (exists, kept)"
elif [ -d "$source" ] && [ -e "$source/bin/cepces-submit" ]; then
    src=$source
    echo "source tree: $src (given checkout)"
else
    mkdir -p "$src"
    case "$source" in
        *.tar.gz|*.tgz)
            tar -xzf "$source" -C "$src" --strip-components=1 ;;
        *)
            if [ -d "$source" ] && git -C "$source" rev-parse --git-dir >/dev/null 2>&1; then
                git -C "$source" archive "$tag" | tar -x -C "$src"
            else
                tmp=$(mktemp -d)
                trap 'rm -rf "$tmp"' EXIT
                git clone --quiet --depth 1 --branch "$tag" "$source" "$tmp/cepces"
                git -C "$tmp/cepces" archive "$tag" | tar -x -C "$src"
            fi ;;
    esac
    echo "source tree: $src ($tag from $source)"
fi
test -e "$src/bin/cepces-submit" || { echo "no bin/cepces-submit in $src" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# cepces' own dependencies (pyproject.toml): cryptography, requests, requests_gssapi. The probe
# runs bin/cepces-submit from the source tree with PYTHONPATH=SRC/src, so installing the
# package itself is only for convenience.
"$venv/bin/pip" install --quiet "$src"
"$venv/bin/python" -c 'import cryptography, requests, requests_gssapi, gssapi' \
    || { echo "cepces' dependencies did not import in $venv" >&2; exit 1; }
echo "venv: $venv"
echo
echo "CEPCES_SRC=$src CEPCES_PYTHON=$venv/bin/python .venv/bin/pytest -v tests/interop/test_wstep_cepces.py"
