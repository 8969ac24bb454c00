#!/usr/bin/env bash
# One command from a fresh Debian 12 machine with Rust: install what mgo-pack's tests and samples
# need, build mgo-pack, pack a sample Go program built for GOAMD64=v1..v4, run the bundle, and
# show what it holds (inspect) and that it is intact (verify).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --locked

sample=target/sample
mkdir -p "$sample"
echo "building the sample Go program for GOAMD64=v1..v4 ..."
for level in v1 v2 v3 v4; do
  (cd tests/fixtures/goprobe &&
    GOAMD64=$level CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off \
      go build -trimpath -o "../../../$sample/probe.$level" .)
done
target/release/mgo-pack -o "$sample/probe" \
  "$sample/probe.v1" "$sample/probe.v2" "$sample/probe.v3" "$sample/probe.v4"
ls -l "$sample/probe" "$sample"/probe.v*
echo
echo "running the bundle: MGODEBUG=log $sample/probe hello"
MGODEBUG=log "$sample/probe" hello | grep -E '^(level|argv|exe)='
echo
echo "what the bundle holds: target/release/mgo-pack inspect $sample/probe"
target/release/mgo-pack inspect "$sample/probe"
target/release/mgo-pack verify "$sample/probe"
