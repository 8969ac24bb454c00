#!/usr/bin/env bash
# Installs what the tests and samples need on Debian 12: Go 1.19, gcc and g++
# build the fixtures, qemu-user and the aarch64 toolchain run cross tests,
# hyperfine, strace, file and binutils inspect and time the bundles.
# Safe to re-run: it only installs what is missing, so it stays quiet (and
# needs no network or root) on an already prepared machine.
set -euo pipefail

packages=(golang-go gcc g++ qemu-user hyperfine musl-tools gcc-aarch64-linux-gnu strace file binutils)
rust_targets=(aarch64-unknown-linux-musl x86_64-unknown-linux-musl)

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
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
