#!/usr/bin/env bash
# Benchmarks for `cookbook agent` (issue 23), measured side by side in one run against the real
# engine and registry of scripts/services.sh (which this script only reads the settings of:
# it never starts or restarts them). Prints a table of figures against their targets; with
# BENCH_STRICT=1, exits 1 when a target is missed.
#
# Set-up: the release binary; a private git remote (a bare repository, file://) holding
# cookbooks/shop with a unique project name and registry namespace; a webhook secret (0600);
# then `cookbook agent --site local --interval 1h` on a loopback port, and its first round
# (shop built, published and deployed to local/dev) awaited through /readyz.
#
#   1. Idle: after the first round and a settle period (BENCH_SETTLE, 30 s), the agent's RSS
#      (VmRSS, and VmHWM: the peak, the first round's build included) from /proc/PID/status,
#      and its CPU over BENCH_IDLE (60) s from /proc/PID/stat utime+stime (ticks / CLK_TCK /
#      seconds = share of one core). The health refresh (every 30 s) is part of idle.
#                                                         targets: RSS < 30 MiB, CPU < 0.1 %
#   2. A /metrics scrape: BENCH_SCRAPES (200) sequential curl requests, each its own
#      connection, timed with curl's time_total, interleaved with as many of /healthz (the HTTP
#      round trip's floor): median and p95 of each, and the ratio; then both again over one
#      kept-alive connection per 20 requests (as Prometheus scrapes: no connect).
#                                                                  target: median < 5 ms
#   3. Webhook to deployed, nothing to build: BENCH_PUSHES (5) times, a commit that changes
#      no container's hash (a file at the repository's root, outside every context) pushed to
#      the remote, then a GitHub push delivery signed with `openssl dgst -sha256 -hmac`
#      POSTed; timed from the POST to the `deploy` event of stage dev for that delivery in
#      <state>/events.jsonl (polled every 20 ms). Each round is awaited (the status lists it)
#      before the next push. min / median / max.               target: < 2 s
#
# COOKBOOK_BIN runs another binary instead of building the release one. Cleanup: the agent is
# stopped with SIGTERM (its exit status must be 0), and the containers and networks labelled
# with the run's project name are removed; the registry namespace stays (as the tests' do).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/services.sh env)"
for tool in curl openssl python3 git docker; do
  command -v "$tool" >/dev/null || { echo "bench-agent: $tool is needed" >&2; exit 2; }
done
docker -H "$DOCKER_HOST" info >/dev/null 2>&1 \
  || { echo "bench-agent: no engine at $DOCKER_HOST (bash scripts/services.sh up)" >&2; exit 3; }
curl -fsS -o /dev/null "http://$COOKBOOK_TEST_REGISTRY/v2/" \
  || { echo "bench-agent: no registry at $COOKBOOK_TEST_REGISTRY (bash scripts/services.sh up)" >&2; exit 3; }

if [ -z "${COOKBOOK_BIN:-}" ]; then
  cargo build --release --locked --quiet
  COOKBOOK_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/cookbook
fi
BIN=$COOKBOOK_BIN
SETTLE=${BENCH_SETTLE:-30} IDLE=${BENCH_IDLE:-60}
SCRAPES=${BENCH_SCRAPES:-200} PUSHES=${BENCH_PUSHES:-5}
RUN_ID="bench-agent-$$-$(date +%s)"
WORK=$(mktemp -d /tmp/cookbook-bench-agent.XXXXXX)
STATE=$WORK/state EVENTS=$WORK/state/events.jsonl LOG=$WORK/agent.log
AGENT=

cleanup() {
  local rc=$?
  if [ -n "$AGENT" ] && kill -0 "$AGENT" 2>/dev/null; then
    kill -TERM "$AGENT" 2>/dev/null || true
    wait "$AGENT" 2>/dev/null || true
    # Gone before its containers are removed (a round it was cancelling could still deploy).
    for _ in $(seq 1 300); do kill -0 "$AGENT" 2>/dev/null || break; sleep 0.1; done
  fi
  # Only what this run made: its project name is unique.
  docker -H "$DOCKER_HOST" ps -aq --filter "label=dev.cookbook.project=$RUN_ID" \
    | xargs -r docker -H "$DOCKER_HOST" rm -f >/dev/null || true
  docker -H "$DOCKER_HOST" network ls -q --filter "label=dev.cookbook.project=$RUN_ID" \
    | xargs -r docker -H "$DOCKER_HOST" network rm >/dev/null || true
  if [ "$rc" -ne 0 ] && [ -f "$LOG" ]; then
    echo "bench-agent: failed; the agent's log:" >&2
    tail -n 40 "$LOG" >&2
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Git with no user or system configuration but ours.
export HOME=$WORK/home GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=$WORK/home/gitconfig
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
mkdir -p "$HOME"
git init -q --bare -b main "$WORK/shop.git"
git init -q -b main "$WORK/work"
cp -r cookbooks/shop/. "$WORK/work/"
rm -rf "$WORK/work/.cookbook" "$WORK/work/cookbook.lock"
python3 - "$WORK/work/cookbook.json" "$RUN_ID" "$COOKBOOK_TEST_REGISTRY/$RUN_ID/shop" <<'PY'
import json, sys
path, name, registry = sys.argv[1:]
doc = json.load(open(path))
doc["project"]["name"] = name
doc["packaging"]["registry"] = registry
json.dump(doc, open(path, "w"), indent=2)
PY
git -C "$WORK/work" add -A
git -C "$WORK/work" commit -q -m "shop for the agent's benchmark"
git -C "$WORK/work" push -q "file://$WORK/shop.git" main

(umask 077 && openssl rand -hex 32 > "$WORK/secret")
SECRET=$(cat "$WORK/secret")

echo "load before: $(uptime)" >&2
cd "$WORK"
: >"$LOG"   # before the agent starts: the loop below reads it at once
"$BIN" agent --site local --remote "file://$WORK/shop.git" --state "$STATE" \
  --listen 127.0.0.1:0 --webhook-secret-file "$WORK/secret" --interval 1h >>"$LOG" 2>&1 &
AGENT=$!

# The port the agent bound (it was given port 0).
URL=
for _ in $(seq 1 300); do
  URL=$(sed -n 's/.*listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$LOG" | head -n 1)
  [ -n "$URL" ] && break
  kill -0 "$AGENT" 2>/dev/null || { echo "bench-agent: the agent exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "bench-agent: the agent did not say where it listens" >&2; exit 1; }
echo "agent $AGENT at $URL, state $STATE" >&2

# Ready once the first round (build, publish, deploy of dev) has ended.
started=$(date +%s)
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")" = 200 ]; do
  kill -0 "$AGENT" 2>/dev/null || { echo "bench-agent: the agent exited" >&2; exit 1; }
  [ $(( $(date +%s) - started )) -lt 900 ] || { echo "bench-agent: not ready in 900 s" >&2; exit 1; }
  sleep 0.5
done
echo "first round done in $(( $(date +%s) - started )) s" >&2
python3 - "$EVENTS" <<'PY'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
dev = [e for e in events if e["kind"] == "deploy" and e.get("stage") == "dev"]
if not dev or dev[-1]["outcome"] != "ok":
    sys.exit(f"bench-agent: the first round did not deploy dev: {events}")
PY

# 1. Idle.
sleep "$SETTLE"
TICKS=$(getconf CLK_TCK)
# Fields 14-17 of /proc/PID/stat (after the command's name): utime, stime, and the waited-for
# children's cutime, cstime (git, during a round; none expected when idle).
cpu_ticks() { sed 's/^.*) //' "/proc/$AGENT/stat" | awk '{ print $12 + $13 }'; }
child_ticks() { sed 's/^.*) //' "/proc/$AGENT/stat" | awk '{ print $14 + $15 }'; }
status_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$AGENT/status"; }
RSS_BEFORE=$(status_kib VmRSS)
T0=$(cpu_ticks) C0=$(child_ticks) W0=$(date +%s%N)
sleep "$IDLE"
T1=$(cpu_ticks) C1=$(child_ticks) W1=$(date +%s%N)
RSS=$(status_kib VmRSS) HWM=$(status_kib VmHWM) THREADS=$(status_kib Threads)
ANON=$(status_kib RssAnon) FILE=$(status_kib RssFile)

# 2. /metrics against /healthz, interleaved.
for path in /metrics /healthz; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL$path")" = 200 ] \
    || { echo "bench-agent: $path did not answer 200" >&2; exit 1; }
done
METRICS_BYTES=$(curl -s "$URL/metrics" | wc -c)
for _ in $(seq 1 "$SCRAPES"); do
  curl -s -o /dev/null -w '%{time_total}\n' "$URL/metrics" >>"$WORK/metrics.times"
  curl -s -o /dev/null -w '%{time_total}\n' "$URL/healthz" >>"$WORK/healthz.times"
done
# The same over one kept-alive connection per batch of 20 (as Prometheus scrapes): no connect,
# so what is left is the request and the answer's making.
for _ in $(seq 1 $(( (SCRAPES + 19) / 20 ))); do
  for path in /metrics /healthz; do
    args=()
    for _ in $(seq 1 20); do args+=(-o /dev/null "$URL$path"); done
    curl -s -w '%{time_total}\n' "${args[@]}" >>"$WORK/${path#/}.kept.times"
  done
done

# 3. Webhook to deployed, nothing to build.
for i in $(seq 1 "$PUSHES"); do
  echo "push $i at $(date -u +%FT%TZ)" >>"$WORK/work/BENCH.md"
  git -C "$WORK/work" add BENCH.md
  git -C "$WORK/work" commit -q -m "benchmark push $i: nothing any container hashes"
  git -C "$WORK/work" push -q "file://$WORK/shop.git" main
  AFTER=$(git -C "$WORK/work" rev-parse HEAD)
  DELIVERY=$(cat /proc/sys/kernel/random/uuid)
  printf '{"ref":"refs/heads/main","before":"%s","after":"%s","repository":{"full_name":"bench/shop"}}' \
    "$(git -C "$WORK/work" rev-parse HEAD~1)" "$AFTER" >"$WORK/body.json"
  SIG=$(openssl dgst -sha256 -hmac "$SECRET" <"$WORK/body.json" | sed 's/^.*= //')
  I=$i python3 - "$EVENTS" "$URL" "$WORK/body.json" "$DELIVERY" "$SIG" "$AFTER" >>"$WORK/webhook.times" <<'PY'
import json, os, subprocess, sys, time, urllib.request
events, url, body, delivery, sig, after = sys.argv[1:]
offset = os.path.getsize(events)
start = time.monotonic()
post = subprocess.run(
    ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
     "-H", "Content-Type: application/json", "-H", "X-GitHub-Event: push",
     "-H", f"X-GitHub-Delivery: {delivery}", "-H", f"X-Hub-Signature-256: sha256={sig}",
     "--data-binary", f"@{body}", f"{url}/hooks/git"],
    capture_output=True, text=True)
if post.stdout != "202":
    sys.exit(f"bench-agent: the delivery was answered {post.stdout}, not 202")
seen, rest = {}, ""
deadline = start + 120
while "dev" not in seen:
    if time.monotonic() > deadline:
        sys.exit(f"bench-agent: no deploy event for dev within 120 s of delivery {delivery}")
    with open(events) as f:
        f.seek(offset)
        rest += f.read()
        offset = f.tell()
    *lines, rest = rest.split("\n")
    for line in lines:
        e = json.loads(line)
        if e.get("who", {}).get("delivery") != delivery:
            continue
        if e["kind"] == "deploy" and e.get("stage") == "dev":
            seen["dev"] = (time.monotonic() - start, e["outcome"])
        seen.setdefault(e["kind"], e)
    if "dev" not in seen:
        time.sleep(0.02)
ms, outcome = seen["dev"]
apply = seen.get("apply", {})
if seen.get("sync_round", {}).get("revision") != after:
    sys.exit(f"bench-agent: the round did not take {after}: {seen}")
if outcome != "unchanged" or apply.get("outcome") != "unchanged":
    sys.exit(f"bench-agent: something was built or changed: {seen}")
# The round's end (the status lists it) before the next push.
while time.monotonic() < deadline:
    status = json.load(urllib.request.urlopen(f"{url}/api/v1/status"))
    if status["rounds"] and status["rounds"][0].get("delivery") == delivery:
        break
    time.sleep(0.1)
else:
    sys.exit(f"bench-agent: the round of delivery {delivery} did not end")
print(round(ms * 1000))
print(f"  push {os.environ.get('I', '?')}: deploy of dev after {ms * 1000:.0f} ms ({apply.get('message')})",
      file=sys.stderr)
PY
done

# Stop: SIGTERM between rounds ends the agent with 0.
kill -TERM "$AGENT"
set +e
wait "$AGENT"
AGENT_RC=$?
set -e
AGENT=
echo "load after: $(uptime)" >&2
[ "$AGENT_RC" -eq 0 ] || { echo "bench-agent: the agent ended with $AGENT_RC after SIGTERM, not 0" >&2; exit 1; }

python3 - "$RSS_BEFORE" "$RSS" "$HWM" "$THREADS" "$T0" "$T1" "$W0" "$W1" "$TICKS" "$METRICS_BYTES" "$(( C1 - C0 ))" "$ANON" "$FILE" \
  "$WORK/metrics.times" "$WORK/healthz.times" "$WORK/webhook.times" \
  "$WORK/metrics.kept.times" "$WORK/healthz.kept.times" <<'PY'
import os, statistics, sys
(rss_before, rss, hwm, threads, t0, t1, w0, w1, ticks, metrics_bytes, children, anon,
 file) = map(int, sys.argv[1:14])
def times(path, scale):
    return [float(line) * scale for line in open(path) if line.strip()]
metrics, healthz = sorted(times(sys.argv[14], 1000)), sorted(times(sys.argv[15], 1000))
in_order = times(sys.argv[16], 1)
webhook = sorted(in_order)
m_kept, h_kept = sorted(times(sys.argv[17], 1000)), sorted(times(sys.argv[18], 1000))
p95 = lambda xs: xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
seconds = (w1 - w0) / 1e9
cpu = (t1 - t0) / ticks / seconds * 100
m_med, h_med = statistics.median(metrics), statistics.median(healthz)
w_med = statistics.median(webhook)
rows = [
    ("idle RSS (VmRSS)", f"{rss / 1024:.1f} MiB", "< 30 MiB", rss < 30 * 1024),
    ("idle CPU (utime+stime, share of one core)",
     f"{cpu:.3f} % ({t1 - t0} ticks in {seconds:.0f} s; children {children})", "< 0.1 %", cpu < 0.1),
    ("/metrics scrape, median (p95)", f"{m_med:.2f} ms ({p95(metrics):.2f})", "< 5 ms", m_med < 5),
    ("webhook to deployed (dev), median [min, max]",
     f"{w_med / 1000:.2f} s [{webhook[0] / 1000:.2f}, {webhook[-1] / 1000:.2f}]", "< 2 s",
     w_med < 2000),
]
print(f"{'benchmark':48} {'measured':34} {'target':9} met")
for name, got, target, ok in rows:
    print(f"{name:48} {got:34} {target:9} {'yes' if ok else 'NO'}")
print(f"{'  RSS at the settle, peak (VmHWM), threads':48} {f'{rss_before / 1024:.1f} MiB, {hwm / 1024:.1f} MiB, {threads}':34} {'-':9} -")
print(f"{'  of the idle RSS: heap and stacks, mapped files':48} {f'{anon / 1024:.1f} MiB, {file / 1024:.1f} MiB':34} {'-':9} -")
print(f"{'  /healthz, median (p95): the floor':48} {f'{h_med:.2f} ms ({p95(healthz):.2f})':34} {'-':9} -")
print(f"{'  /metrics / /healthz (medians)':48} {f'{m_med / h_med:.2f}x, {metrics_bytes} bytes':34} {'-':9} -")
print(f"{'  kept-alive: /metrics, /healthz, median (p95)':48} {f'{statistics.median(m_kept):.2f} ({p95(m_kept):.2f}), {statistics.median(h_kept):.2f} ({p95(h_kept):.2f}) ms':34} {'-':9} -")
print(f"{'  webhook to deployed, each run (ms)':48} {', '.join(str(round(w)) for w in in_order):34} {'-':9} -")
if os.environ.get("BENCH_STRICT") == "1" and not all(r[3] for r in rows):
    sys.exit(1)
PY
