#!/usr/bin/env bash
# The Python package's check (tools/test.sh runs it; docs/python.md): a venv under
# build/python-venv with the build tools and test dependencies from PyPI (pinned), then
#   pip install .        without build isolation (it uses the tools just installed), 2 jobs,
#   pip wheel .          from the same build tree (no second compile), checked for its files,
#   pytest python/tests  (NumPy only; the torch wrapper's tests skip without torch).
#   the README's ```python blocks (tools/check_readme.py --python).
# Needs python3-venv and python3-dev (tools/setup_debian.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=build/python-venv
build=build/python-ci
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  "numpy==2.4.6" "pytest==9.2.0" "scikit-build-core==1.1.2" "nanobind==3.1.0"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation -Cbuild-dir="$build" .
rm -rf build/wheels
"$venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-build-isolation --no-deps -Cbuild-dir="$build" \
  -w build/wheels .
"$venv/bin/python" - <<'PY'
import glob, zipfile
wheels = glob.glob("build/wheels/diffblocks-*.whl")
assert len(wheels) == 1, wheels
names = zipfile.ZipFile(wheels[0]).namelist()
for want in ("diffblocks/__init__.py", "diffblocks/torch.py", "diffblocks/_core.pyi", "diffblocks/py.typed"):
    assert want in names, (want, names)
assert any(n.startswith("diffblocks/_core.") and n.endswith(".so") for n in names), names
print("wheel:", wheels[0], len(names), "files")
PY
"$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
# The README's Python blocks, with the package just installed.
"$venv/bin/python" tools/check_readme.py --python "$venv/bin/python" --work build/readme-python
