#!/usr/bin/env bash
# Applies ruff's lint autofixes for the rules selected in pyproject.toml ([tool.ruff.lint]):
# import order (I001), unused imports (F401), pyupgrade (UP), plus the one rename ruff calls
# unsafe but which is a pure rename of an unused loop variable (B007: `u` -> `_u`). No formatter:
# nothing else about the code's layout changes. Then runs `ruff check` to list what still needs a
# hand edit (exit status 1 if anything does).
#
# Run at integration, when nobody else is editing the tree, and rerun the tests afterwards (import
# reordering in a package __init__ can in principle expose an import cycle):
#   bash scripts/lint_fix.sh && .venv/bin/python -c "import gbounds, gbounds.experiments, gbounds.cli"
set -euo pipefail
cd "$(dirname "$0")/.."
RUFF="${RUFF:-.venv/bin/ruff}"
PATHS=(gbounds tests benchmarks scripts)

"${RUFF}" check --fix-only "${PATHS[@]}"
"${RUFF}" check --fix-only --unsafe-fixes --select B007 "${PATHS[@]}"
"${RUFF}" check "${PATHS[@]}"
