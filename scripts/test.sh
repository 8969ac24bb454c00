#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the test dependencies (Go 1.19, qemu-user, ...),
# then runs every unit and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --locked
cargo test --workspace --locked --no-fail-fast
