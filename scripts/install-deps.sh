#!/usr/bin/env bash
# Installs what the builds, tests and samples need on Debian 12: Go 1.19, gcc,
# g++, make and cmake build the fixtures and the build recipes (docs/BUILDING.md),
# qemu-user and the aarch64, riscv64, ppc64le and 32-bit ARM (soft-float, armel) toolchains
# (compilers and C library headers) run cross tests, hyperfine, strace, file and binutils
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
  gcc-riscv64-linux-gnu libc6-dev-riscv64-cross
  gcc-arm-linux-gnueabi libc6-dev-armel-cross
  gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross
  strace file binutils
  gdb valgrind ltrace linux-perf procps psmisc
)
# riscv64: the -gnu target, because rustup serves no standard library for riscv64gc-unknown-linux-musl
# with this toolchain (404); the launcher uses neither C library.
# ppc64le: the -gnu target, the one rustup serves a standard library for.
rust_targets=(aarch64-unknown-linux-musl x86_64-unknown-linux-musl riscv64gc-unknown-linux-gnu
  powerpc64le-unknown-linux-gnu)
# Packages taken from bookworm-backports, each with the lowest version the tests accept, and only
# these: Debian 12's qemu-user (7.2) has no riscv_hwprobe system call (QEMU 8.2 added it), which
# the riscv64 launcher reads the RVA22/RVA23 extensions from.
declare -A backports=([qemu-user]=1:8.2)
# 32-bit ARM: rustup serves no standard library for armv5te (and no musl one for any 32-bit ARM
# target with this toolchain), so the no_std launcher builds core and compiler_builtins from the
# toolchain's own sources (-Zbuild-std, xtask/src/runtime.rs), which this component holds.
rust_components=(rust-src)

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

# Installed at the version backports must give, or not at all.
new_enough() {
  local version
  version=$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null) || return 1
  installed "$1" && dpkg --compare-versions "$version" ge "${backports[$1]}"
}

bookworm=false
if grep -qs '^VERSION_CODENAME=bookworm$' /etc/os-release; then
  bookworm=true
fi

missing=()
from_backports=()
for pkg in "${packages[@]}"; do
  if [[ -n "${backports[$pkg]:-}" ]] && $bookworm; then
    new_enough "$pkg" || from_backports+=("$pkg")
  else
    installed "$pkg" || missing+=("$pkg")
  fi
done

sudo=()
if ((EUID != 0)); then
  sudo=(sudo)
fi

if ((${#from_backports[@]})) && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  "${sudo[@]}" tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  echo "added the bookworm-backports apt source"
fi

if ((${#missing[@]} + ${#from_backports[@]})); then
  # sudo drops the caller's environment, hence env inside it.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null
  if ((${#missing[@]})); then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for pkg in "${missing[@]}"; do
      echo "installed $pkg"
    done
  fi
  if ((${#from_backports[@]})); then
    # PACKAGE/bookworm-backports takes that one package's backports version; everything else,
    # its dependencies included, stays with Debian 12's own.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
      "${from_backports[@]/%//bookworm-backports}" >/dev/null
    for pkg in "${from_backports[@]}"; do
      echo "installed $pkg from bookworm-backports"
    done
  fi
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
  have=$(rustup component list --installed)
  for component in "${rust_components[@]}"; do
    if ! grep -q "^$component" <<<"$have"; then
      if ! out=$(rustup component add "$component" 2>&1); then
        echo "$out" >&2
        exit 1
      fi
      echo "installed rust component $component"
    fi
  done
else
  echo "warning: rustup not found; add the Rust targets ${rust_targets[*]} and the components \
${rust_components[*]} by hand" >&2
fi
