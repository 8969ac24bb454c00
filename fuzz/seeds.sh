#!/usr/bin/env bash
# Builds the fuzz targets' seed corpora from real files: tiny programs built here (x86-64 and
# arm64, static and dynamic), packed by mgo-pack into stored, gzip, zstd and zstd-dict bundles;
# then each target gets what it reads: whole bundles, payload regions, programs, and the stored
# bytes of compressed variants (zstd-dict ones with their dictionary in front).
# Usage: fuzz/seeds.sh   (writes fuzz/corpus/<target>/)
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$root" && cargo build -q -p mgo-pack)
pack="$root/target/debug/mgo-pack"

# Four distinct tiny static programs (they exit with their level), and a small dynamic one.
for n in 1 2 3 4; do
    printf '.globl _start\n_start:\n mov $60, %%eax\n mov $%d, %%edi\n syscall\n' "$n" > "$work/t$n.s"
    as -o "$work/t$n.o" "$work/t$n.s"
    ld -o "$work/tiny-v$n" "$work/t$n.o"
    printf 'int main(int c, char **v) { return c + %d; }\n' "$n" > "$work/d$n.c"
    gcc -O2 -o "$work/dyn-v$n" "$work/d$n.c"
done
if command -v aarch64-linux-gnu-gcc > /dev/null; then
    printf '.globl _start\n_start:\n mov x8, #93\n mov x0, #0\n svc #0\n' > "$work/a.s"
    aarch64-linux-gnu-gcc -nostdlib -static -o "$work/arm64-tiny" "$work/a.s"
fi

mkdir -p corpus/{bundle_file,bundle_region,direct_check,gzip_variant,zstd_variant}
for f in "$work"/tiny-v* "$work"/dyn-v* "$work"/arm64-tiny; do
    [ -e "$f" ] && cp "$f" corpus/direct_check/
done

for kind in tiny dyn; do
    for mode in none gzip:1 zstd:1 zstd-dict:1; do
        name="$kind-${mode%%:*}"
        "$pack" -q --compress "$mode" -o "$work/$name" \
            "v1=$work/$kind-v1" "v2=$work/$kind-v2" "v3=$work/$kind-v3" "v4=$work/$kind-v4"
        cp "$work/$name" corpus/bundle_file/
        "$pack" inspect --json "$work/$name" > "$work/$name.json"
        python3 - "$work/$name" "$work/$name.json" "$work" "$kind" <<'PY'
import json, sys
path, meta, work, kind = sys.argv[1:5]
data = open(path, "rb").read()
info = json.load(open(meta))
base = info["payload"]["offset"]
region = data[base:base + info["payload"]["size"]]
name = path.rsplit("/", 1)[1]
open(f"corpus/bundle_region/{name}", "wb").write(region)
for v in info["variants"]:
    stored = region[v["offset"]:v["offset"] + v["stored_size"]]
    seed = f"{name}-{v['level']}"
    if v["encoding"] == "deflate" or v["encoding"] == "gzip":
        open(f"corpus/gzip_variant/{seed}", "wb").write(stored)
    elif v["encoding"] in ("zstd", "zstd-dict"):
        dictionary = b""
        if v["dictionary"] is not None:
            base_level = info["variants"][v["dictionary"]]["level"]
            dictionary = open(f"{work}/{kind}-{base_level}", "rb").read()[:65535]
        head = len(dictionary).to_bytes(2, "little")
        open(f"corpus/zstd_variant/{seed}", "wb").write(head + dictionary + stored)
PY
    done
done
for t in corpus/*; do
    echo "$t: $(ls "$t" | wc -l) seeds, $(du -sh "$t" | cut -f1)"
done
