#!/usr/bin/env bash
# Installs what the builds, tests and samples need on Debian 12: Go 1.19, gcc,
# g++, make and cmake build the fixtures and the build recipes (docs/BUILDING.md),
# qemu-user and the aarch64 toolchain (compiler and
# C library headers) run cross tests, hyperfine, strace, file and binutils
# inspect and time the bundles; gdb, valgrind, ltrace, linux-perf (perf), procps
# (ps, pgrep) and psmisc (killall) are the tools the fidelity tests
# (tests/tests/fidelity.rs) point at bundles.
# Safe to re-run: it only installs what is missing, so it stays quiet (and
# needs no network or root) on an already prepared machine.
#
#   scripts/install-deps.sh          install what is missing
#   scripts/install-deps.sh --list   print the Debian packages it installs, one per line,
#                                    and install nothing
set -euo pipefail

# Packages are installed without their recommendations, so everything a build uses is named here:
# libc6-dev-arm64-cross (the arm64 C library headers) is only a recommendation of
# gcc-aarch64-linux-gnu, and the arm64 C fixtures and the aarch64-zstd launcher image need it.
packages=(
  golang-go gcc g++ make cmake qemu-user hyperfine musl-tools
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  strace file binutils
  gdb valgrind ltrace linux-perf procps psmisc
)
rust_targets=(aarch64-unknown-linux-musl x86_64-unknown-linux-musl)

case "${1:-}" in
  --list)
    printf '%s\n' "${packages[@]}"
    exit 0
    ;;
  "") ;;
  *)
    echo "usage: scripts/install-deps.sh [--list]" >&2
    exit 2
    ;;
esac

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for pkg in "${packages[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  sudo=()
  if ((EUID != 0)); then
    sudo=(sudo)
  fi
  # sudo drops the caller's environment, hence env inside it.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for pkg in "${missing[@]}"; do
    echo "installed $pkg"
  done
fi

if command -v rustup >/dev/null 2>&1; then
  have=$(rustup target list --installed)
  for target in "${rust_targets[@]}"; do
    if ! grep -qx "$target" <<<"$have"; then
      if ! out=$(rustup target add "$target" 2>&1); then
        echo "$out" >&2
        exit 1
      fi
      echo "installed rust target $target"
    fi
  done
else
  echo "warning: rustup not found; add the Rust targets ${rust_targets[*]} by hand" >&2
fi
