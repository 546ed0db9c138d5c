#!/usr/bin/env bash
# Normalization benchmarks (docs/BENCHMARKS.md, "Reproducible images"), side by side in one run:
#  1. a 1 GiB image: `docker save | normalize` against the floor `docker save | sha256sum`, with
#     the normalizing process's peak RSS (alternating runs);
#  2. the shop images, normalized with uncompressed and with gzip layers: registry bytes and the
#     time to push each layout's blobs and manifest into a fresh repository (curl, monolithic
#     uploads, as `apply` does);
#  3. with COOKBOOK_BENCH_OLD=BIN and COOKBOOK_BENCH_NEW=BIN (release binaries before and after
#     normalization was wired in): `apply` of shop, every step built afresh (a project name of
#     its own per run, so no build cache applies), alternating.
# Needs the services (scripts/services.sh) and a release build of the bench:
#   cargo build --release --bench normalize
# Usage: bash scripts/bench-normalize.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/services.sh env)"
RUNS=${1:-5}
BIN=${COOKBOOK_BENCH_BIN:-$(ls -t target/release/deps/normalize-* | grep -v "\.d$" | head -1)}
REG=${COOKBOOK_TEST_REGISTRY:-127.0.0.1:5000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if ! docker image inspect cookbook-bench/big:latest >/dev/null 2>&1; then
  printf 'FROM cookbook-test/busybox:latest\nRUN mkdir /data && for i in $(seq 0 15); do dd if=/dev/urandom of=/data/$i.bin bs=1048576 count=64 2>/dev/null; done\n' > "$WORK/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t cookbook-bench/big:latest "$WORK" >/dev/null
fi
BASE=$(docker image inspect cookbook-test/busybox:latest --format '{{join .RootFS.Layers ","}}')

echo "## 1 GiB image ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
for i in $(seq "$RUNS"); do
  floor=$( { /usr/bin/time -f '%e' sh -c 'docker save cookbook-bench/big:latest | sha256sum >/dev/null'; } 2>&1 | tail -1)
  rm -rf "$WORK/out"
  norm=$( { /usr/bin/time -f '%e' sh -c "docker save cookbook-bench/big:latest | COOKBOOK_BENCH_BASE=$BASE COOKBOOK_BENCH_OUT=$WORK/out /usr/bin/time -o $WORK/rss -f '%M' $BIN - >/dev/null"; } 2>&1 | tail -1)
  echo "run $i: floor ${floor} s, normalize ${norm} s, ratio $(echo "scale=2; $norm / $floor" | bc), peak RSS $(cat "$WORK/rss") KiB"
done

echo "## shop: uncompressed vs gzip layers"
push_layout() { # layout repo -> seconds
  local layout=$1 repo=$2 start end
  start=$(date +%s.%N)
  for blob in "$layout"/blobs/sha256/*; do
    local digest="sha256:$(basename "$blob")"
    local location
    location=$(curl -fsS -X POST -D - -o /dev/null "http://$REG/v2/$repo/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
    case $location in http*) ;; *) location="http://$REG$location" ;; esac
    case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
    curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$blob" "$location${sep}digest=$digest" -o /dev/null
  done
  local manifest
  manifest=$(jq -r '.manifests[0].digest' "$layout/index.json")
  curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary @"$layout/blobs/sha256/${manifest#sha256:}" "http://$REG/v2/$repo/manifests/latest" -o /dev/null
  end=$(date +%s.%N)
  echo "scale=2; ($end - $start) / 1" | bc
}
# The shop images as `apply --no-push` builds them (normalized; normalizing again changes nothing).
mkdir -p "$WORK/shop" && cp -r cookbooks/shop/. "$WORK/shop/" && rm -rf "$WORK/shop/.cookbook" "$WORK/shop/cookbook.lock"
NEW_BIN=${COOKBOOK_BENCH_NEW:-$PWD/target/release/cookbook}  # absolute: the next line changes directory
(cd "$WORK/shop" && "$NEW_BIN" apply --no-push >/dev/null 2>&1)
images=$(jq -r '.containers[].image' "$WORK/shop/cookbook.lock")
stamp=$(date +%s)
for gzip in 0 1; do
  total=0; push=0
  for image in $images; do
    name=$(basename "${image%:*}")  # strip the tag, not the registry port
    rm -rf "$WORK/l"
    docker save "$image" | COOKBOOK_BENCH_GZIP=$gzip COOKBOOK_BENCH_BASE=$BASE COOKBOOK_BENCH_OUT=$WORK/l "$BIN" - >/dev/null
    bytes=$(find "$WORK/l/blobs" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
    t=$(push_layout "$WORK/l" "bench-$stamp-gzip$gzip/$name")
    total=$((total + bytes)); push=$(echo "$push + $t" | bc)
    echo "  $name gzip=$gzip: $bytes bytes, push $t s"
  done
  echo "shop gzip=$gzip: $total registry bytes (blobs incl. base), push $push s"
done

if [ -n "${COOKBOOK_BENCH_OLD:-}" ] && [ -n "${COOKBOOK_BENCH_NEW:-}" ]; then
  echo "## apply of shop, nothing cached: without vs with normalization (load $(cut -d' ' -f1-3 /proc/loadavg))"
  for i in $(seq "$RUNS"); do
    for which in old new; do
      bin=$COOKBOOK_BENCH_OLD; [ "$which" = new ] && bin=$COOKBOOK_BENCH_NEW
      dir="$WORK/apply-$which-$i"
      mkdir -p "$dir" && cp -r cookbooks/shop/. "$dir/" && rm -rf "$dir/.cookbook" "$dir/cookbook.lock"
      project="bench$which$i$stamp"
      jq --arg p "$project" --arg r "$REG/$project" '.project.name=$p | .packaging.registry=$r' \
        "$dir/cookbook.json" > "$dir/c.json" && mv "$dir/c.json" "$dir/cookbook.json"
      # Every container's first step names the project: nothing of another run is reused.
      jq --arg p "$project" '.containers.api.build_args={"BENCH_API":$p} | .containers.web.build_args={"BENCH_WEB":$p}' \
        "$dir/cookbook.json" > "$dir/c.json" && mv "$dir/c.json" "$dir/cookbook.json"
      sed -i "1a ARG BENCH_DB=$project" "$dir/services/db/Dockerfile"
      t=$( { cd "$dir" && /usr/bin/time -f '%e' "$bin" apply >/dev/null 2>"$dir/log"; tail -1 "$dir/log"; } )
      echo "run $i $which: $t s"
    done
  done
fi
