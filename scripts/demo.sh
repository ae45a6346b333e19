#!/usr/bin/env bash
# Install aetiket and run the main job against the embedded local server.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e .
exec python3 examples/quickstart.py "$@"
