#!/usr/bin/env bash
# The no-op apply at the registry's floor (issue 24): a generated 60-container cookbook, applied
# once so that every image is in the registry, then `cookbook apply` (nothing to do, WITHOUT
# --trust-lock: each repository's tag list confirms the lock's images) against `cookbook hash` of
# the same cookbook, side by side in one hyperfine run. Target: apply <= 2x hash (medians).
#
#   BENCH_RUNS      runs per command (default 10)
#   BENCH_BASELINE  another cookbook binary (an older build) timed on the same cookbook in the
#                   same run, for a before/after
#   BENCH_STRICT=1  exit 1 when the target is missed
#
# It uses the engine and registry that are already running (scripts/services.sh env), and
# starts or stops nothing. The load average is printed before and after: on a shared machine only
# figures from one run compare.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "hyperfine is needed (apt-get install hyperfine)" >&2; exit 2; }
eval "$(bash scripts/services.sh env)"
cargo build --release --locked --quiet
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/cookbook
WORK=$(mktemp -d /tmp/cookbook-bench-noop.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RUNS=${BENCH_RUNS:-10}
REG="$COOKBOOK_TEST_REGISTRY/bench-noop-$$"
export CI=true
echo "load before: $(uptime)" >&2

# The base: an image of the test busybox image's own, never pushed (as bench-apply.sh's case 4:
# a base pushed under other names by other tests would send an older binary's pin check to
# Docker Hub).
BASE=cookbook-bench/sixty-base:latest
printf 'FROM %s\nLABEL dev.cookbook.bench=sixty\n' "$COOKBOOK_TEST_BASE_IMAGE" \
  | DOCKER_BUILDKIT=0 docker build -q -t "$BASE" - >/dev/null
python3 - "$WORK/sixty" "$REG" "$BASE" <<'EOF'
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
FILE="$WORK/sixty/cookbook.json"
"$BIN" -f "$FILE" apply >/dev/null 2>&1          # push once
sleep 1.1; "$BIN" -f "$FILE" hash >/dev/null     # settle the stat cache (its racy window)
# Every container must be cached by the registry (not by the lock): the run measured is the
# default one.
"$BIN" -f "$FILE" apply --format json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)["containers"]
bad = {n: c for n, c in d.items() if (c["status"], c.get("source")) != ("cached", "registry")}
assert len(d) == 60 and not bad, bad'

# The third, `--trust-lock`, asks the registry nothing: what a no-op apply costs besides the
# registry's answers.
COMMANDS=("$BIN -f $FILE apply" "$BIN -f $FILE hash" "$BIN -f $FILE apply --trust-lock")
[[ -n ${BENCH_BASELINE:-} ]] && COMMANDS+=("$BENCH_BASELINE -f $FILE apply")
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$WORK/noop.json" "${COMMANDS[@]}" >&2
echo "load after: $(uptime)" >&2

python3 - "$WORK/noop.json" "${BENCH_STRICT:-0}" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
ms = [r["median"] * 1000 for r in results]
apply, hash_ = ms[0], ms[1]
ratio = apply / hash_
met = ratio <= 2.0
print(f"no-op apply of 60 cached containers: {apply:.0f} ms (median), hash {hash_:.1f} ms: "
      f"{ratio:.2f}x (target <= 2x: {'met' if met else 'NOT met'})")
print(f"apply --trust-lock (no registry request): {ms[2]:.1f} ms: {ms[2] / hash_:.2f}x hash")
if len(ms) > 3:
    print(f"baseline's no-op apply of the same cookbook: {ms[3]:.0f} ms: {ms[3] / hash_:.2f}x hash")
sys.exit(1 if sys.argv[2] == "1" and not met else 0)
EOF
