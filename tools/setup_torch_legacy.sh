#!/usr/bin/env bash
# PyTorch 1.13.1 as a second benchmark baseline, next to the newest torch in .venv.
#
# Why: the reference numbers of the issue were measured with torch 1.13.1, and
# tools/bench.sh compares diffblocks with that version as well as with the newest one. torch
# 1.13 has no wheel for this machine's Python 3.11 (the newest it supports is 3.10), so it lives
# in a Debian bullseye chroot (Python 3.9), which this script sets up:
#   - $DIFFBLOCKS_LEGACY_ROOT (default /opt/bullseye): debootstrap --variant=minbase bullseye
#     with python3, python3-venv, python3-pip, and the host's CA bundle (for a TLS proxy);
#   - the venv /opt/t113 in it: torch 1.13.1 (cp39 wheel, --no-deps) plus the four CUDA 11
#     packages it needs just to import, 'numpy<2', typing_extensions, diffusers 0.25.1,
#     safetensors, 'huggingface_hub<0.26'. About 3.6 GB on disk in all (the venv 3.3 GB: torch
#     and the CUDA libraries), plus ~0.85 GB for the wheel while it is downloaded and installed;
#   - mounts: /proc, /dev, /tmp and the repository, bind-mounted at its own path inside the
#     root, so paths relative to the repository and under /tmp mean the same in and out;
#   - build/torch-legacy/python: a wrapper that runs the venv's python in the chroot, in the
#     current directory when that is inside the repository, else in the repository root:
#         build/torch-legacy/python tools/bench_torch.py --suite origin --json build/bench/x.json
# Runs as root (chroot, mount, debootstrap; re-runs itself with sudo otherwise) on Debian. Each
# step is skipped when already done, so re-running it only re-mounts what a reboot unmounted
# (the wrapper does that itself too).
#
#   tools/setup_torch_legacy.sh            set up (or check) everything
#   tools/setup_torch_legacy.sh --mount    only the mounts
#   tools/setup_torch_legacy.sh --remove   unmount, then delete the root and the wrapper
#
# To remove it by hand, unmount FIRST (rm -rf through the bind mounts would delete the
# repository and /tmp):  for m in work/main tmp dev proc; do umount /opt/bullseye/$m; done
# (work/main = this repository's path), check `grep /opt/bullseye /proc/mounts` prints
# nothing, then rm -rf /opt/bullseye build/torch-legacy.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
root=${DIFFBLOCKS_LEGACY_ROOT:-/opt/bullseye}
root=${root%/}
venv=/opt/t113
wrapper=$repo/build/torch-legacy/python
mirror=http://deb.debian.org/debian
pip_pkgs=(nvidia-cublas-cu11==11.10.3.66 nvidia-cuda-nvrtc-cu11==11.7.99 nvidia-cuda-runtime-cu11==11.7.99
          nvidia-cudnn-cu11==8.5.0.96 'numpy<2' typing_extensions diffusers==0.25.1 safetensors
          'huggingface_hub<0.26')
export PIP_CERT=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt} PIP_DISABLE_PIP_VERSION_CHECK=1

mode=setup
case "${1:-}" in
  "") ;;
  --mount) mode=mount ;;
  --remove) mode=remove ;;
  *) echo "setup_torch_legacy.sh: unknown option '$1' (--mount, --remove)" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup_torch_legacy.sh: needs root (chroot, mount)" >&2; exit 1; }
  exec sudo --preserve-env=DIFFBLOCKS_LEGACY_ROOT,PIP_CERT,http_proxy,https_proxy,no_proxy "$0" "$@"
fi
case "$root" in
  ""|/) echo "setup_torch_legacy.sh: DIFFBLOCKS_LEGACY_ROOT must not be /" >&2; exit 2 ;;
esac

log() { echo "setup_torch_legacy: $*"; }
mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }
in_root() { chroot "$root" "$@"; }
pip_in_root() {  # the venv's pip; a host-only PIP_FIND_LINKS directory would only draw warnings
  if [[ "${PIP_FIND_LINKS:-}" == /* && ! -e "$root$PIP_FIND_LINKS" ]]; then
    in_root env -u PIP_FIND_LINKS "$venv/bin/pip" "$@"
  else
    in_root "$venv/bin/pip" "$@"
  fi
}

do_mounts() {
  mounted "$root/proc" || { log "mount proc on $root/proc"; mount -t proc proc "$root/proc"; }
  local d
  for d in /dev /tmp "$repo"; do
    mkdir -p "$root$d"
    mounted "$root$d" || { log "bind-mount $d on $root$d"; mount --bind "$d" "$root$d"; }
  done
}

if [ "$mode" = mount ]; then
  [ -x "$root/usr/bin/python3" ] || { echo "setup_torch_legacy.sh: no chroot at $root; run it without --mount" >&2; exit 1; }
  do_mounts
  exit 0
fi
if [ "$mode" = remove ]; then
  for d in "$repo" /tmp /dev /proc; do
    if mounted "$root$d"; then log "umount $root$d"; umount "$root$d"; fi
  done
  if grep -q " $root/" /proc/mounts; then
    echo "setup_torch_legacy.sh: still mounted under $root, not deleting:" >&2
    grep " $root/" /proc/mounts >&2
    exit 1
  fi
  log "rm -rf $root"
  rm -rf --one-file-system "$root"
  if [ -f "$wrapper" ] && grep -q "^root=$root " "$wrapper"; then
    log "rm -rf ${wrapper%/python}"
    rm -rf "${wrapper%/python}"
  fi
  exit 0
fi

# 1. the bullseye root with python3, venv and pip.
if [ ! -x "$root/usr/bin/python3" ] || ! in_root dpkg -s python3 python3-venv python3-pip >/dev/null 2>&1; then
  if [ -e "$root/etc/debian_version" ] && [ -x "$root/usr/bin/apt-get" ] && [ ! -d "$root/debootstrap" ]; then
    log "installing python3, python3-venv, python3-pip in $root"
    do_mounts
    in_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -qq --no-install-recommends \
      python3 python3-venv python3-pip
  else
    if ! command -v debootstrap >/dev/null; then
      log "installing debootstrap"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
    fi
    log "debootstrap bullseye into $root (a few minutes)"
    mkdir -p "$root"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bullseye "$root" "$mirror"
  fi
fi
# The host's CA bundle: with a TLS-intercepting proxy, bullseye's own bundle lacks its CA.
if ! cmp -s /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"; then
  log "copying the host's CA bundle into $root"
  mkdir -p "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
if [ -f /etc/resolv.conf ] && ! cmp -s /etc/resolv.conf "$root/etc/resolv.conf"; then
  cp -L /etc/resolv.conf "$root/etc/resolv.conf.tmp" && mv -f "$root/etc/resolv.conf.tmp" "$root/etc/resolv.conf"
fi

do_mounts

# 2. the venv, torch 1.13.1 and the rest.
if [ ! -x "$root$venv/bin/python" ]; then
  log "creating the venv $venv in $root"
  in_root /usr/bin/python3 -m venv "$venv"
fi
version_of() {  # version of an installed distribution in the venv, empty when missing
  in_root "$venv/bin/python" -c 'import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass' "$1"
}
if [ "$(version_of torch)" != 1.13.1 ]; then
  wheel=$(ls "$root"/wheel/torch-1.13.1-cp39-*.whl 2>/dev/null | head -n1 || true)
  downloaded=0
  if [ -z "$wheel" ]; then
    downloaded=1
    log "downloading the torch 1.13.1 cp39 wheel (~890 MB) to $root/wheel"
    mkdir -p "$root/wheel"
    hostpip=()
    if [ -x "$repo/.venv/bin/pip" ]; then hostpip=("$repo/.venv/bin/pip")
    elif python3 -m pip --version >/dev/null 2>&1; then hostpip=(python3 -m pip); fi
    if ((${#hostpip[@]})); then
      "${hostpip[@]}" download -q torch==1.13.1 --no-deps --python-version 3.9 --only-binary=:all: \
        -d "$root/wheel"
    else
      pip_in_root download -q --no-cache-dir torch==1.13.1 --no-deps -d /wheel
    fi
    wheel=$(ls "$root"/wheel/torch-1.13.1-cp39-*.whl | head -n1)
  fi
  log "installing $(basename "$wheel")"
  pip_in_root install -q --no-cache-dir --no-deps "/wheel/$(basename "$wheel")"
  if ((downloaded)); then rm -f "$wheel"; rmdir "$root/wheel" 2>/dev/null || true; fi
fi
if ! in_root "$venv/bin/python" -c 'import torch, diffusers, safetensors, numpy, typing_extensions
assert diffusers.__version__ == "0.25.1" and numpy.__version__ < "2"' >/dev/null 2>&1; then
  log "installing ${pip_pkgs[*]}"
  pip_in_root install -q --no-cache-dir "${pip_pkgs[@]}"
fi

# 3. the wrapper.
mkdir -p "$(dirname "$wrapper")"
cat > "$wrapper.tmp" <<EOF
#!/usr/bin/env bash
# Written by tools/setup_torch_legacy.sh: Python 3.9 + torch 1.13.1 in the chroot $root,
# in the current directory when it is inside $repo (bind-mounted at the same path), else there.
set -euo pipefail
root=$root repo=$repo
# Not root: sudo for the chroot, but run Python as the caller (its files stay the caller's).
if [ "\$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=DIFFBLOCKS_THREADS -- env DIFFBLOCKS_LEGACY_USER="\$(id -u):\$(id -g)" "\$0" "\$@"
fi
awk -v m="\$root\$repo" '\$2 == m { f = 1 } END { exit !f }' /proc/mounts ||
  DIFFBLOCKS_LEGACY_ROOT="\$root" "\$repo/tools/setup_torch_legacy.sh" --mount >&2
dir=\$(pwd -P)
case "\$dir" in "\$repo"|"\$repo"/*) ;; *) dir=\$repo ;; esac
user=()
if [ -n "\${DIFFBLOCKS_LEGACY_USER:-}" ]; then user=(--userspec="\$DIFFBLOCKS_LEGACY_USER"); export HOME=/tmp; fi
exec chroot "\${user[@]}" "\$root" /bin/sh -c 'cd "\$0" && exec $venv/bin/python "\$@"' "\$dir" "\$@"
EOF
chmod +x "$wrapper.tmp"
mv -f "$wrapper.tmp" "$wrapper"
if [ -n "${SUDO_UID:-}" ]; then chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$(dirname "$wrapper")"; fi

log "$("$wrapper" -c 'import sys, torch, diffusers
print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, diffusers {diffusers.__version__}")')"
log "wrapper: ${wrapper#"$repo/"}"
