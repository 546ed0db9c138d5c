#!/usr/bin/env bash
# Benchmarks for `cookbook apply`, measured side by side in one run against the real engine and
# registry that scripts/services.sh starts. Prints figures and ratios; with BENCH_STRICT=1, exits
# non-zero when a target is missed.
#
#   1. no-op apply of cookbooks/shop with everything cached          target: < 1 s
#   2. apply of one container vs `docker build` of the same context   target: ratio <= 1.1
#   3. 8 independent containers with `RUN sleep 2`, --jobs 8 vs one  target: ratio <= 1.5
#   4. no-op apply of a generated 60-container cookbook, everything cached in the registry, vs
#      `cookbook hash` of it                                         target: <= 3x and < 250 ms
#      (also `apply --trust-lock` when the binary has it, and with BENCH_BASELINE=/path/to/an/
#      older/cookbook that binary's no-op apply of the same cookbook, in the same hyperfine run)
#
# BENCH_CASES (default "1 2 3 4") picks the cases to run. The load average is printed before
# and after: on a shared machine only figures from one run compare.
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

CASES=" ${BENCH_CASES:-1 2 3 4} "
NOOP=0 ONE_COOKBOOK=0 ONE_DOCKER=1 PAR_ONE=1 PAR_EIGHT=0 RAW_ONE=1 RAW_EIGHT=0 SIXTY_APPLY=0 SIXTY_HASH=1
SIXTY_TRUST=-1 SIXTY_BASE=-1
echo "load before: $(uptime)" >&2
ms() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["median"]*1000))' "$@"; }

# 1. No-op apply of shop.
if [[ $CASES == *" 1 "* ]]; then
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
fi

# 2. One container: cookbook apply --no-push vs docker build (classic builder, as cookbook uses)
#    of the same image: the same labels apply puts on it (one LABEL commit in the classic builder)
#    and its two tags.
if [[ $CASES == *" 2 "* ]]; then
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
fi

# 3. Eight independent containers with RUN sleep 2, --jobs 8, against one such build.
if [[ $CASES == *" 3 "* ]]; then
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
fi

# 4. A 60-container cookbook (generated containers, one small application each), applied once
#    so that every image is in the registry; then the no-op apply (pins read from the lock, 60
#    content tags looked up, nothing to push) against `cookbook hash` of the same cookbook,
#    side by side. Their base is an image of the busybox test image's own, built here and never
#    pushed: other tests push the busybox image under other names, and a binary older than the
#    fix in apply/pin.rs then checked its pin against Docker Hub (seconds of DNS retries here).
if [[ $CASES == *" 4 "* ]]; then
SIXTY_BASE_IMAGE=cookbook-bench/sixty-base:latest
printf 'FROM cookbook-test/busybox:latest\nLABEL dev.cookbook.bench=sixty\n' \
  | DOCKER_BUILDKIT=0 docker build -q -t "$SIXTY_BASE_IMAGE" - >/dev/null 2>&1
python3 - "$WORK/sixty" "$REG" "$SIXTY_BASE_IMAGE" <<'EOF'
import json, os, sys
root, reg, base = sys.argv[1], sys.argv[2], sys.argv[3]
apps, containers = {}, {}
for i in range(60):
    os.makedirs(f"{root}/apps/a{i}", exist_ok=True)
    open(f"{root}/apps/a{i}/run.sh", "w").write(f"#!/bin/sh\necho {i}\n")
    apps[f"a{i}"] = {"source": f"apps/a{i}", "run_command": ["/bin/sh", f"/srv/a{i}/run.sh"]}
    containers[f"c{i}"] = {"base_image": base, "applications": [f"a{i}"]}
json.dump({"manifest_version": "1.0", "project": {"name": "sixty"}, "applications": apps,
           "containers": containers, "packaging": {"registry": reg + "/sixty"}},
          open(f"{root}/cookbook.json", "w"), indent=2)
EOF
"$BIN" -f "$WORK/sixty/cookbook.json" apply >/dev/null 2>&1
sleep 1.1; "$BIN" -f "$WORK/sixty/cookbook.json" hash >/dev/null   # settle the stat cache
SIXTY=("$BIN -f $WORK/sixty/cookbook.json apply" "$BIN -f $WORK/sixty/cookbook.json hash")
if "$BIN" apply --help | grep -q -- --trust-lock; then
  SIXTY+=("$BIN -f $WORK/sixty/cookbook.json apply --trust-lock")
fi
if [[ -n ${BENCH_BASELINE:-} ]]; then
  SIXTY+=("$BENCH_BASELINE -f $WORK/sixty/cookbook.json apply")
fi
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$WORK/sixty.json" "${SIXTY[@]}" >&2
SIXTY_APPLY=$(ms "$WORK/sixty.json" 0)
SIXTY_HASH=$(ms "$WORK/sixty.json" 1)
i=2
if [[ ${SIXTY[2]:-} == *--trust-lock ]]; then SIXTY_TRUST=$(ms "$WORK/sixty.json" 2); i=3; fi
if [[ -n ${BENCH_BASELINE:-} ]]; then SIXTY_BASE=$(ms "$WORK/sixty.json" $i); fi
fi
echo "load after: $(uptime)" >&2

python3 - "$CASES" "$NOOP" "$ONE_COOKBOOK" "$ONE_DOCKER" "$PAR_ONE" "$PAR_EIGHT" "$RAW_ONE" "$RAW_EIGHT" "$SIXTY_APPLY" "$SIXTY_HASH" "$SIXTY_TRUST" "$SIXTY_BASE" <<'EOF'
import sys, os
cases = sys.argv[1].split()
noop, c, d, p1, p8, r1, r8, sa, sh, st, sb = map(int, sys.argv[2:])
rows = [
    ("1", "no-op apply of shop (4 containers, all cached)", f"{noop} ms", "< 1000 ms", noop < 1000),
    ("2", "apply vs docker build, one 64 MiB context", f"{c} ms vs {d} ms = {c/d:.2f}x", "<= 1.10x", c / d <= 1.10),
    ("3", "8 x RUN sleep 2, --jobs 8, vs 1", f"{p8} ms vs {p1} ms = {p8/p1:.2f}x", "<= 1.50x", p8 / p1 <= 1.50),
    ("4", "no-op apply of 60 cached containers vs hash", f"{sa} ms vs {sh} ms = {sa/sh:.2f}x", "<= 3x, < 250 ms", sa / sh <= 3 and sa < 250),
]
rows = [r[1:] for r in rows if r[0] in cases]
print(f"{'benchmark':50} {'measured (median)':34} {'target':10} met")
for name, got, target, ok in rows:
    print(f"{name:50} {got:34} {target:10} {'yes' if ok else 'NO'}")
if "3" in cases:
    print(f"{'  reference: 8 x docker build, same labels, vs 1':50} {f'{r8} ms vs {r1} ms = {r8/r1:.2f}x':34} {'-':10} -")
if "4" in cases and st >= 0:
    ok = st / sh <= 3 and st < 250
    print(f"{'  the same with apply --trust-lock':50} {f'{st} ms vs {sh} ms = {st/sh:.2f}x':34} {'<= 3x, < 250 ms':10} {'yes' if ok else 'NO'}")
if "4" in cases and sb >= 0:
    print(f"{'  baseline binary (BENCH_BASELINE), no-op apply':50} {f'{sb} ms vs {sh} ms = {sb/sh:.2f}x':34} {'-':10} -")
if os.environ.get("BENCH_STRICT") == "1" and not all(r[3] for r in rows):
    sys.exit(1)
EOF
