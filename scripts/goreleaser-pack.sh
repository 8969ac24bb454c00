#!/usr/bin/env bash
# Packs GoReleaser's per-level linux/amd64 builds (`goamd64: [v1, v2, v3, v4]`) into one mgo-pack
# bundle, after GoReleaser's build step. See docs/GORELEASER.md.
#
#   scripts/goreleaser-pack.sh [-d DIST] [-i BUILD_ID] [-o OUT] BINARY
#
# GoReleaser writes each build to DIST/<BUILD_ID>_linux_amd64_<vN>/<BINARY> (BUILD_ID defaults to
# the project name, which is usually the binary's name). This packs every level present, naming
# each one explicitly so that mgo-pack checks it against the Go build info of the file, verifies
# the bundle, and writes it to OUT (default DIST/<BUILD_ID>_linux_amd64_packed/<BINARY>).
#
# Environment: MGO_PACK, the mgo-pack command (default: `mgo-pack` on PATH); MGO_COMPRESS is
# passed on to mgo-pack as it is.
set -euo pipefail

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

dist=dist
id=
out=
while getopts 'd:i:o:h' opt; do
  case "$opt" in
    d) dist=$OPTARG ;;
    i) id=$OPTARG ;;
    o) out=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
binary=$1
id=${id:-$binary}
out=${out:-$dist/${id}_linux_amd64_packed/$binary}
mgo_pack=${MGO_PACK:-mgo-pack}

inputs=()
for level in v1 v2 v3 v4; do
  build=$dist/${id}_linux_amd64_$level/$binary
  if [ -f "$build" ]; then
    inputs+=("$level=$build")
  fi
done
if [ ${#inputs[@]} -eq 0 ]; then
  echo "goreleaser-pack: no builds found at $dist/${id}_linux_amd64_v{1,2,3,4}/$binary" >&2
  echo "goreleaser-pack: build with goamd64: [v1, v2, v3, v4] first, or pass -d/-i" >&2
  exit 1
fi
case "${inputs[0]}" in
  v1=*) ;;
  *) echo "goreleaser-pack: warning: no v1 build; the bundle will not run on CPUs below ${inputs[0]%%=*}" >&2 ;;
esac

mkdir -p "$(dirname "$out")"
"$mgo_pack" -o "$out" "${inputs[@]}"
"$mgo_pack" verify --quiet "$out"
levels=("${inputs[@]%%=*}")
echo "goreleaser-pack: wrote $out (${levels[*]})"
