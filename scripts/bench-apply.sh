#!/usr/bin/env bash
# Benchmarks for `cookbook apply`, measured side by side in one run against the real engine and
# registry that scripts/services.sh starts. Prints figures and ratios; with BENCH_STRICT=1, exits
# non-zero when a target is missed.
#
#   1. no-op apply of cookbooks/shop with everything cached          target: < 1 s
#   2. apply of one container vs `docker build` of the same context   target: ratio <= 1.1
#   3. 8 independent containers with `RUN sleep 2`, --jobs 8 vs one  target: ratio <= 1.5
#
# Docker's own layer cache would make repeated builds instant, so every timed build gets a fresh
# nonce file in its context (both tools see the same change), and every parallel run a fresh
# build argument.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
bash scripts/services.sh up >&2
eval "$(bash scripts/services.sh env)"
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/cookbook
WORK=$(mktemp -d /tmp/cookbook-bench-apply.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RUNS=${BENCH_RUNS:-10}
REG="$COOKBOOK_TEST_REGISTRY/bench-$$"
export CI=true

ms() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["median"]*1000))' "$@"; }

# 1. No-op apply of shop.
cp -r cookbooks/shop "$WORK/shop"
rm -rf "$WORK/shop/.cookbook" "$WORK/shop/cookbook.lock"
python3 - "$WORK/shop/cookbook.json" "$REG" <<'EOF'
import json, sys
p, reg = sys.argv[1], sys.argv[2]
d = json.load(open(p)); d["packaging"]["registry"] = reg + "/shop"; json.dump(d, open(p, "w"), indent=2)
EOF
"$BIN" -f "$WORK/shop/cookbook.json" apply >/dev/null 2>&1
sleep 1.1; "$BIN" -f "$WORK/shop/cookbook.json" hash >/dev/null   # settle the stat cache (racy window)
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$WORK/noop.json" \
  "$BIN -f $WORK/shop/cookbook.json apply" >&2
NOOP=$(ms "$WORK/noop.json" 0)

# 2. One container: cookbook apply --no-push vs docker build (classic builder, as cookbook uses)
#    of the same image: the same labels apply puts on it (one LABEL commit in the classic builder)
#    and its two tags.
mkdir -p "$WORK/one/ctx"
head -c 64M /dev/urandom > "$WORK/one/ctx/blob.bin"
cat > "$WORK/one/ctx/Dockerfile" <<'EOF'
FROM cookbook-test/busybox:latest
COPY . /app
RUN sha256sum /app/blob.bin /app/nonce > /app/sums && cat /app/blob.bin /app/blob.bin | sha256sum
EOF
cat > "$WORK/one/cookbook.json" <<EOF
{"manifest_version": "1.0", "project": {"name": "bench-one-$$"},
 "containers": {"one": {"dockerfile": "ctx/Dockerfile", "context": "ctx"}}}
EOF
NONCE="$WORK/one/ctx/nonce"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$WORK/one.json" \
  --prepare "sh -c 'date +%s%N > $NONCE'" \
  "$BIN -f $WORK/one/cookbook.json apply --no-push" \
  --prepare "sh -c 'date +%s%N > $NONCE'" \
  "sh -c 'DOCKER_BUILDKIT=0 docker build -q -t bench-one-$$:latest -t bench-one-$$:second \
     --label dev.cookbook.input-hash=\$(cat $NONCE) --label dev.cookbook.project=bench-one \
     --label dev.cookbook.container=one --label org.opencontainers.image.title=one $WORK/one/ctx'" >&2
ONE_COOKBOOK=$(ms "$WORK/one.json" 0)
ONE_DOCKER=$(ms "$WORK/one.json" 1)

# 3. Eight independent containers with RUN sleep 2, --jobs 8, against one such build.
mkdir -p "$WORK/par/ctx"
cat > "$WORK/par/ctx/Dockerfile" <<'EOF'
FROM cookbook-test/busybox:latest
ARG N=0
ARG NONCE=0
RUN echo "$N $NONCE" > /n && sleep 2
EOF
gen() { # gen COUNT NONCE
  python3 - "$WORK/par/cookbook.json" "$1" "$2" "$$" <<'EOF'
import json, sys
p, n, nonce, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
containers = {f"c{i}": {"dockerfile": "ctx/Dockerfile", "context": "ctx",
                        "build_args": {"N": str(i), "NONCE": nonce}} for i in range(n)}
json.dump({"manifest_version": "1.0", "project": {"name": f"bench-par-{pid}"}, "containers": containers}, open(p, "w"))
EOF
}
export -f gen; export WORK
hyperfine -N --runs "$(( RUNS < 5 ? RUNS : 5 ))" --export-json "$WORK/par.json" \
  --prepare "bash -c 'gen 1 \$(date +%s%N)'" \
  "$BIN -f $WORK/par/cookbook.json apply --no-push --jobs 8" \
  --prepare "bash -c 'gen 8 \$(date +%s%N)'" \
  "$BIN -f $WORK/par/cookbook.json apply --no-push --jobs 8" >&2
PAR_ONE=$(ms "$WORK/par.json" 0)
PAR_EIGHT=$(ms "$WORK/par.json" 1)

# Reference for 3: the engine alone, 8 parallel `docker build`s of images carrying the same four
# labels apply adds (the classic builder commits them as one extra step per image).
LABELS="--label dev.cookbook.input-hash=x --label dev.cookbook.project=p --label dev.cookbook.container=c --label org.opencontainers.image.title=c"
raw() { # raw COUNT
  local n; n=$(date +%s%N)
  for i in $(seq 0 $(( $1 - 1 ))); do
    DOCKER_BUILDKIT=0 docker build -q $LABELS --build-arg N="$i" --build-arg NONCE="$n" "$WORK/par/ctx" >/dev/null 2>&1 &
  done
  wait
}
export -f raw; export LABELS
hyperfine -N --runs "$(( RUNS < 5 ? RUNS : 5 ))" --export-json "$WORK/raw.json" \
  "bash -c 'raw 1'" "bash -c 'raw 8'" >&2
RAW_ONE=$(ms "$WORK/raw.json" 0)
RAW_EIGHT=$(ms "$WORK/raw.json" 1)

python3 - "$NOOP" "$ONE_COOKBOOK" "$ONE_DOCKER" "$PAR_ONE" "$PAR_EIGHT" "$RAW_ONE" "$RAW_EIGHT" <<'EOF'
import sys, os
noop, c, d, p1, p8, r1, r8 = map(int, sys.argv[1:])
rows = [
    ("no-op apply of shop (4 containers, all cached)", f"{noop} ms", "< 1000 ms", noop < 1000),
    ("apply vs docker build, one 64 MiB context", f"{c} ms vs {d} ms = {c/d:.2f}x", "<= 1.10x", c / d <= 1.10),
    ("8 x RUN sleep 2, --jobs 8, vs 1", f"{p8} ms vs {p1} ms = {p8/p1:.2f}x", "<= 1.50x", p8 / p1 <= 1.50),
]
print(f"{'benchmark':50} {'measured (median)':34} {'target':10} met")
for name, got, target, ok in rows:
    print(f"{name:50} {got:34} {target:10} {'yes' if ok else 'NO'}")
print(f"{'  reference: 8 x docker build, same labels, vs 1':50} {f'{r8} ms vs {r1} ms = {r8/r1:.2f}x':34} {'-':10} -")
if os.environ.get("BENCH_STRICT") == "1" and not all(r[3] for r in rows):
    sys.exit(1)
EOF
