#!/usr/bin/env bash
# Creates (idempotently) the pinned reference environment `.venv-nt` in which neural-tangents 0.6.5
# imports: Python 3.11 (3.9-3.12 work), jax/jaxlib 0.4.30, flax 0.8.5, numpy < 2, frozendict, and
# neural-tangents installed with --no-deps (its declared tensorflow and tf2jax are not installed;
# `scripts/nt_reference.py` keeps the TensorFlow-importing `neural_tangents.experimental` from loading).
#
# Used by `make parity`, `make test-slow` (CI's slow tier) and `benchmarks/bench_ntk.py`.
# When the environment already exists with the same pins, this returns in well under a second.
#
# Environment: NT_VENV (default: .venv-nt in the repository root), NT_PYTHON (default: python3.11,
# else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${NT_VENV:-.venv-nt}"
# Pins; changing this list changes the stamp and rebuilds the environment.
PINS="jax==0.4.30 jaxlib==0.4.30 numpy<2 scipy<1.14 frozendict absl-py msgpack PyYAML typing_extensions rich"
NODEPS="flax==0.8.5 neural-tangents==0.6.5"
STAMP_TEXT="pins: ${PINS} | no-deps: ${NODEPS}"
STAMP="${VENV}/.gbounds-nt-stamp"

if [[ -f "${STAMP}" && -x "${VENV}/bin/python" ]] && [[ "$(cat "${STAMP}")" == "${STAMP_TEXT}" ]]; then
  exit 0
fi

if [[ -n "${NT_PYTHON:-}" ]]; then
  PY="${NT_PYTHON}"
elif command -v python3.11 >/dev/null 2>&1; then
  PY=python3.11
else
  PY=python3
fi
if ! "${PY}" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 12) else 1)'; then
  echo "nt_env.sh: ${PY} is $("${PY}" -V 2>&1); jax 0.4.30 needs Python 3.9-3.12 (set NT_PYTHON)." >&2
  exit 1
fi

echo "nt_env.sh: creating ${VENV} with $("${PY}" -V 2>&1) (jax 0.4.30, flax 0.8.5, neural-tangents 0.6.5)" >&2
rm -rf "${VENV}"
"${PY}" -m venv "${VENV}"
# shellcheck disable=SC2086
"${VENV}/bin/pip" install -q --disable-pip-version-check ${PINS}
# shellcheck disable=SC2086
"${VENV}/bin/pip" install -q --disable-pip-version-check --no-deps ${NODEPS}
# Smoke test: imports without TensorFlow and computes a tiny kernel with both implementations.
"${VENV}/bin/python" scripts/nt_reference.py --selfcheck
echo "${STAMP_TEXT}" > "${STAMP}"
echo "nt_env.sh: ${VENV} ready" >&2
