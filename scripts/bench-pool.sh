#!/usr/bin/env bash
# A pool of builders (issue 24), measured side by side in one run: the same cookbook of 16
# containers, each with a `RUN sleep 2` (4 FROM the busybox test image, 12 FROM those), applied
#   a. on one engine                       (`DOCKER_HOST=A cookbook apply --jobs J`: today's run)
#   b. on a pool of two engines            (`cookbook apply --jobs J --builder A --builder B`)
# `--jobs` is builds at once per builder, so the pool may run twice as many at once. The two
# engines of the pool are private `dockerd`s this script starts (as tests/it/common/dockerd.rs
# does: a data root, exec root and unix socket of their own under /tmp, the services' storage
# driver, the test registry insecure) and stops; the one engine is the first of them, so both
# sides run on engines alike. All of them share this machine's cores: what the pool gains here
# is builds at once, not CPU (on separate machines it gains both).
#
# Alternating rounds (scripts/bench-interleaved.py). Before every timed run, every
# application's file changes and the registry namespace is new, so nothing is cached: not in
# the registry, and not in an engine's build cache (the COPY before each RUN differs). Prints
# the medians and the ratio pool / one; docs/BENCHMARKS.md ("A pool of builders") records them.
#
# Needs the services running (`bash scripts/services.sh up`; this script does not start them)
# and dockerd on PATH (run as root, like the services' engine).
#
#   RUNS=5 JOBS=2 bash scripts/bench-pool.sh
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/services.sh env)"
docker version >/dev/null || { echo "the services' engine does not answer: scripts/services.sh up" >&2; exit 1; }
BIN=${COOKBOOK_BIN:-}
if [[ -z $BIN ]]; then
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/cookbook
fi
RUNS=${RUNS:-5} JOBS=${JOBS:-2} SLEEP=${SLEEP:-2}
WORK=$(mktemp -d /tmp/cbp.XXXXXX)
BASE=cookbook-test/busybox:latest
DRIVER=$(docker info --format '{{.Driver}}')
PIDS=()

# A private engine: dockerd on $WORK/eN/d.sock (short paths: a socket path holds 108 bytes).
start_engine() {
  local d=$WORK/e$1
  mkdir -p "$d/data" "$d/exec"
  echo '{}' > "$d/daemon.json"
  dockerd --host="unix://$d/d.sock" --data-root="$d/data" --exec-root="$d/exec" \
    --pidfile="$d/dockerd.pid" --config-file="$d/daemon.json" --storage-driver="$DRIVER" \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=false \
    --log-level=warn --insecure-registry="$COOKBOOK_TEST_REGISTRY" >"$d/dockerd.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 600); do
    DOCKER_HOST=unix://$d/d.sock docker version >/dev/null 2>&1 && break
    sleep 0.1
  done
  docker save "$BASE" | DOCKER_HOST=unix://$d/d.sock docker load -q >/dev/null
}

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  grep -o " $WORK/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

start_engine 1
start_engine 2
A=unix://$WORK/e1/d.sock
B=unix://$WORK/e2/d.sock

mkdir -p "$WORK/book"
python3 - "$WORK/book" "$SLEEP" <<'EOF'
import json, os, sys
root, sleep = sys.argv[1], sys.argv[2]
apps, containers = {}, {}
for i in range(16):
    app = f"a{i}"
    os.makedirs(os.path.join(root, "apps", app), exist_ok=True)
    apps[app] = {"source": f"apps/{app}", "build_commands": [f"sleep {sleep}", f"test -f {app}.txt"],
                 "run_command": ["/bin/cat", f"{app}.txt"]}
    name, base = (f"r{i}", "cookbook-test/busybox:latest") if i < 4 else (f"c{i}", f"container:r{i % 4}")
    containers[name] = {"base_image": base, "applications": [app]}
json.dump({"manifest_version": "1.1", "project": {"name": "benchpool"}, "applications": apps,
           "containers": containers, "packaging": {"registry": "REGISTRY/benchpool-0"}},
          open(os.path.join(root, "cookbook.json"), "w"), indent=1)
EOF
sed -i "s#REGISTRY#$COOKBOOK_TEST_REGISTRY#" "$WORK/book/cookbook.json"

# Before every timed run: new content in every application, a new namespace, no lock.
echo 0 > "$WORK/n"
# The run's own id in both: the registry keeps earlier runs' images, which would be cache hits.
RUN_ID=$(date +%s)-$$
cat > "$WORK/prepare.sh" <<EOF
n=\$((\$(cat $WORK/n)+1)); echo \$n > $WORK/n
for d in $WORK/book/apps/*; do echo "$RUN_ID-\$n" > "\$d/\$(basename "\$d").txt"; done
sed -i -E "s#/benchpool-[0-9-]+#/benchpool-$RUN_ID-\$n#" $WORK/book/cookbook.json
rm -f $WORK/book/cookbook.lock
EOF
export CI=true
APPLY="$BIN -f $WORK/book/cookbook.json apply --jobs $JOBS"
python3 scripts/bench-interleaved.py "$WORK/r.json" "$WORK" 1 "$RUNS" "bash $WORK/prepare.sh" \
  "one=env DOCKER_HOST=$A $APPLY 2>/dev/null" \
  "pool=$APPLY --builder $A --builder $B 2>/dev/null"
python3 - "$WORK/r.json" "$JOBS" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
one, pool = r["one"]["median"], r["pool"]["median"]
print(f"16 containers, RUN sleep 2, --jobs {sys.argv[2]} per builder; medians of {len(r['one']['times'])} alternating runs")
print(f"one engine        {one:8.1f} s   (runs: {', '.join(f'{t:.1f}' for t in r['one']['times'])})")
print(f"pool of two       {pool:8.1f} s   (runs: {', '.join(f'{t:.1f}' for t in r['pool']['times'])})")
print(f"ratio pool / one  {pool/one:8.2f}   (target <= 0.6)")
EOF
