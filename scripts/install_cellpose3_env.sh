#!/usr/bin/env bash
# Make the second environment in which the `cellpose3` method runs (cellpose 3.x cannot share an
# environment with cellpose >= 4, which `cellpose-sam` needs).
#
#   bash scripts/install_cellpose3_env.sh [VENV_DIR]        # default: .venv-cellpose3
#   VENV_DIR/bin/apgbench run --dataset livecell --method cellpose3
#   apgbench report                                          # from either environment
#
# The venv sees the main environment's packages (--system-site-packages: apgbench, torch, numpy...) and
# installs only cellpose 3 into itself, which shadows cellpose 4 there. Both environments write to the same
# results root (./results or $APGBENCH_RESULTS_DIR), so one report shows cellpose3 next to every other method.
# Extra pip arguments go through $PIP_ARGS (e.g. PIP_ARGS="-c constraints.txt" to keep the torch pin).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo/.venv-cellpose3}"
python="${PYTHON:-python}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv --system-site-packages "$venv"
fi
# shellcheck disable=SC2086
"$venv/bin/python" -m pip install ${PIP_ARGS:-} "cellpose>=3.1,<4"
# An editable apgbench without dependencies gives the venv its own `apgbench` command (same source tree).
# shellcheck disable=SC2086
"$venv/bin/python" -m pip install ${PIP_ARGS:-} --no-deps -e "$repo"
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
import apgbench
version = md.version("cellpose")
assert version.startswith("3."), f"cellpose {version} in the cellpose3 environment"
print(f"cellpose3 environment ready: cellpose {version}, apgbench from {apgbench.__file__}")
PY
