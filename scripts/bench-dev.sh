#!/usr/bin/env bash
# The dev loop's edit-to-running time (docs/BENCHMARKS.md, "The dev loop"), against the engine of
# scripts/services.sh: `cookbook dev --down` on a two-container project (`a`: busybox with one
# application and no RUN step, the container edited; `b`: a Dockerfile container, left alone),
# then EDITS edits of a's source, one at a time. Each edit's time runs from just before the write
# to the moment the new container's first output line (`a | a says N`) appears in the loop's
# streamed logs: debounce, hashing, the build, the deploy (a health check every 100 ms) and the
# log stream's pick-up of the replaced container. Prints each time, then the median and the max
# (target, issue 26: under 3 s).
#
# Knobs: EDITS (10), COOKBOOK_BIN (default: the release build in target/release, built here),
# IGNORE_TERM=1: `a` ignores SIGTERM (a shell as PID 1 without a trap, as many servers run), so
# each replacement waits for the loop's stop cap (1 s) instead of Docker's 10 s grace.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/services.sh env)"
EDITS=${EDITS:-10}
if [[ -z ${COOKBOOK_BIN:-} ]]; then
  cargo build --release --locked --quiet --bin cookbook
  COOKBOOK_BIN=$PWD/target/release/cookbook
fi

dir=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid"
    wait "$pid" || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

project="benchdev$$"
mkdir -p "$dir/svc/a" "$dir/svc/b"
cat >"$dir/cookbook.json" <<EOF
{
  "manifest_version": "1.1",
  "project": { "name": "$project" },
  "applications": { "a": { "source": "svc/a", "run_command": ["/bin/sh", "/srv/a/run.sh"] } },
  "containers": {
    "a": { "base_image": "cookbook-test/busybox:latest", "applications": ["a"],
           "health": { "command": ["true"], "interval": "100ms", "timeout": "1s", "retries": 3 } },
    "b": { "dockerfile": "svc/b/Dockerfile", "context": "svc/b" }
  },
  "packaging": { "tagging": "content-hash" },
  "lifecycle": { "stages": ["dev"] },
  "federation": { "sites": { "local": { "type": "bare-metal",
    "target": { "docker": { "host": "env" } }, "stages": ["dev"], "containers": ["a", "b"] } } }
}
EOF
if [[ ${IGNORE_TERM:-} == 1 ]]; then
  cat >"$dir/svc/a/run.sh" <<'EOF'
echo "a says $(cat /srv/a/msg.txt)"
while true; do sleep 1; done
EOF
else
  cat >"$dir/svc/a/run.sh" <<'EOF'
echo "a says $(cat /srv/a/msg.txt)"
# A server that stops on SIGTERM at once, as a real one does: a deploy replacing it stops it
# gracefully first (stop_grace), and `sleep & wait` lets the trap run without waiting for sleep.
trap 'exit 0' TERM
while true; do sleep 1 & wait $!; done
EOF
fi
echo 0 >"$dir/svc/a/msg.txt"
cat >"$dir/svc/b/Dockerfile" <<'EOF'
FROM cookbook-test/busybox:latest
CMD ["/bin/sh", "-c", "echo b is up; trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done"]
EOF

out=$dir/out.txt
(cd "$dir" && exec "$COOKBOOK_BIN" dev --site local --stage dev --down >"$out" 2>"$dir/err.txt") &
pid=$!

# Waits (at most 120 s, a guard against a hang) until the loop's stdout has the line `$1`.
await_line() {
  local deadline=$((SECONDS + 120))
  until grep -qxF -- "$1" "$out"; do
    if ((SECONDS > deadline)) || ! kill -0 "$pid" 2>/dev/null; then
      echo "bench-dev: no line '$1'; the loop printed:" >&2
      cat "$dir/err.txt" "$out" >&2
      exit 1
    fi
    sleep 0.01
  done
}

await_line "a | a says 0"
await_line "b | b is up"
times=()
for n in $(seq 1 "$EDITS"); do
  start=$(date +%s.%N)
  echo "$n" >"$dir/svc/a/msg.txt"
  await_line "a | a says $n"
  end=$(date +%s.%N)
  t=$(echo "$end - $start" | bc)
  times+=("$t")
  printf 'edit %2d: %.2f s\n' "$n" "$t"
done
grep -F '[dev]' "$dir/err.txt" | tail -n 3 >&2
printf '%s\n' "${times[@]}" | sort -n | awk '
  { v[NR] = $1 }
  END {
    median = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "edits: %d  median: %.2f s  max: %.2f s  (load average: %s)\n", NR, median, v[NR], load
  }' load="$(cut -d' ' -f1-3 /proc/loadavg)"
