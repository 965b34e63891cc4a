#!/usr/bin/env bash
# Installs the Debian packages the C++ build needs, skipping those already present, plus
# python3-matplotlib so that ctest also runs the similarity plot test (tools/plot_similarity.py),
# and python3-venv + python3-dev for the Python package's check (tools/test_python.sh: a venv,
# and the headers its module builds against); the C++ build itself never needs Python.
#   --fuzz   also clang and its sanitizer/libFuzzer runtimes (tools/fuzz.sh, tools/sanitize.sh)
set -euo pipefail
pkgs=(cmake g++ make pkg-config xtensor-dev nlohmann-json3-dev catch2 libbenchmark-dev python3-matplotlib python3-venv python3-dev)
for arg in "$@"; do
  case "$arg" in
    --fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
    *) echo "setup_debian.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
