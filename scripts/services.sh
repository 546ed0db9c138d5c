#!/usr/bin/env bash
# Provision the real services cookbook's integration tests talk to, on a
# Debian 12 machine without systemd (also fine on one with it):
#
#   scripts/services.sh up       install what is missing, start what is down (idempotent)
#   scripts/services.sh down     stop exactly what `up` started
#   scripts/services.sh env      print `export VAR=...` lines for the tests
#   scripts/services.sh status   one line per service
#
# Everything lives under ${COOKBOOK_SERVICES_DIR:-/tmp/cookbook-services}:
#   docker.sock            private Docker engine socket (never the system one)
#   docker-data/ docker-exec/   dockerd --data-root / --exec-root
#   containerd/            private containerd (config, socket, root, state)
#   registry/              registry config.yml + storage
#   git/                   git daemon --base-path (create bare repos here)
#   pids/NAME.pid          "PID STARTTIME" of each process `up` started
#   logs/NAME.log          their output
#
# Only loopback addresses are used: dockerd runs with --bridge=none, so
# containers get a loopback-only network (use `--network host` when a build
# step must reach 127.0.0.1 services). The networks a deploy creates take their
# subnets from one private pool ($COOKBOOK_SERVICES_POOL, 10.213.0.0/16), so
# that containers on them can reach each other on a host whose FORWARD policy
# is DROP (see ensure_forwarding): dockerd runs with --iptables=false and adds
# no rule of its own.
#
# Knobs (env): COOKBOOK_SERVICES_DIR, COOKBOOK_REGISTRY_PORT (5000),
# COOKBOOK_GIT_PORT (9418), COOKBOOK_TEST_BASE_IMAGE
# (cookbook-test/busybox:latest), COOKBOOK_DOCKER_STORAGE_DRIVER (auto:
# overlay2 if an overlay mount works here, else vfs), COOKBOOK_DOCKER_WAIT (60),
# COOKBOOK_SERVICES_SMOKE=1 (force the RUN smoke build on every `up`),
# COOKBOOK_SERVICES_POOL (10.213.0.0/16: the deploy networks' subnets).
set -euo pipefail

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"
export LC_ALL=C

STATE_RAW=${COOKBOOK_SERVICES_DIR:-/tmp/cookbook-services}
mkdir -p "$STATE_RAW"
STATE=$(cd "$STATE_RAW" && pwd -P)
REG_PORT=${COOKBOOK_REGISTRY_PORT:-5000}
GIT_PORT=${COOKBOOK_GIT_PORT:-9418}
BASE_IMAGE=${COOKBOOK_TEST_BASE_IMAGE:-cookbook-test/busybox:latest}
DOCKER_WAIT=${COOKBOOK_DOCKER_WAIT:-60}
POOL=${COOKBOOK_SERVICES_POOL:-10.213.0.0/16}

DOCKER_SOCK=$STATE/docker.sock
DOCKER_URL=unix://$DOCKER_SOCK
CTRD_DIR=$STATE/containerd
CTRD_SOCK=$CTRD_DIR/containerd.sock
PIDS=$STATE/pids
LOGS=$STATE/logs

T0=${EPOCHREALTIME/./}
say() { local t=$(( (${EPOCHREALTIME/./} - T0) / 100000 )); printf '[services %3d.%ds] %s\n' $((t / 10)) $((t % 10)) "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# unix socket paths are limited to 108 bytes; containerd adds ".ttrpc".
(( ${#CTRD_SOCK} < 95 )) || die "COOKBOOK_SERVICES_DIR is too long for unix sockets: $STATE"

docker_cli() {
  local cli=${COOKBOOK_DOCKER_CLI:-}
  if [[ -z $cli ]]; then cli=$(command -v docker) || die "no docker CLI found"; fi
  env -u DOCKER_CONTEXT -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
    DOCKER_HOST="$DOCKER_URL" DOCKER_BUILDKIT=0 DOCKER_CLI_HINTS=false "$cli" "$@"
}

# ---------------------------------------------------------------- processes

# /proc/PID/stat field 22 (start time in ticks) guards against PID reuse.
# A zombie (state Z) counts as gone: init here may reap late.
proc_start() {
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  local fields; read -r -a fields <<<"${s##*) }"
  [[ ${fields[0]} != Z ]] || return 1
  echo "${fields[19]}"
}

# pid_of NAME: prints the pid recorded for NAME if that very process still runs.
pid_of() {
  local f=$PIDS/$1.pid pid start now
  [[ -f $f ]] || return 1
  read -r pid start <"$f" || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  now=$(proc_start "$pid") || return 1
  [[ $now == "$start" ]] || return 1
  echo "$pid"
}

# spawn NAME CMD...: start CMD in its own session, detached, logging to
# logs/NAME.log. The child writes its own pid before exec'ing CMD, so the pid
# is right whether or not setsid had to fork.
spawn() {
  local name=$1; shift
  mkdir -p "$PIDS" "$LOGS"
  [[ -f $LOGS/$name.log ]] && mv -f "$LOGS/$name.log" "$LOGS/$name.log.1"
  local tmp=$PIDS/$name.pid.new pid="" start i
  rm -f "$tmp"
  setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$tmp" "$@" </dev/null >"$LOGS/$name.log" 2>&1 9>&- &
  for (( i = 0; i < 100; i++ )); do [[ -s $tmp ]] && break; sleep 0.05; done
  read -r pid <"$tmp" 2>/dev/null || true
  rm -f "$tmp"
  [[ -n $pid ]] && start=$(proc_start "$pid") || { show_log "$name"; die "$name exited at once"; }
  echo "$pid $start" >"$PIDS/$name.pid"
}

show_log() { echo "----- tail of $LOGS/$1.log -----" >&2; tail -n 40 "$LOGS/$1.log" >&2 2>/dev/null || true; echo "-----" >&2; }

# wait_until NAME SECONDS CMD...: poll CMD until it succeeds; fail early if NAME died.
wait_until() {
  local name=$1 secs=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  while ! "$@" >/dev/null 2>&1; do
    if ! pid_of "$name" >/dev/null; then show_log "$name"; die "$name died while starting"; fi
    if (( $(date +%s) >= deadline )); then show_log "$name"; die "$name did not answer within ${secs}s"; fi
    sleep 0.2
  done
}

# stop NAME [SECONDS]: TERM the recorded process, wait, then KILL.
stop() {
  local name=$1 secs=${2:-20} pid i
  if ! pid=$(pid_of "$name"); then rm -f "$PIDS/$name.pid"; return 0; fi
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for (( i = 0; i < secs * 10; i++ )); do
    pid_of "$name" >/dev/null || break
    sleep 0.1
  done
  if pid_of "$name" >/dev/null; then
    say "$name did not exit in ${secs}s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for (( i = 0; i < 50; i++ )); do pid_of "$name" >/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDS/$name.pid"
}

tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# An empty bare repo under the base path: ls-remote on it proves a git daemon
# serving *our* base path answers (a bare TCP probe would only show a port).
GIT_PROBE=.cookbook-probe.git
git_answers() { timeout 5 git ls-remote "git://127.0.0.1:$GIT_PORT/$GIT_PROBE" >/dev/null 2>&1; }
docker_answers() { docker_cli version --format '{{.Server.Version}}' >/dev/null 2>&1; }
registry_answers() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$REG_PORT/v2/"; }
containerd_answers() { [[ -S $CTRD_SOCK ]] && ctr --address "$CTRD_SOCK" --connect-timeout 1s version >/dev/null 2>&1; }

# ---------------------------------------------------------------- packages

APT_UPDATED=0
apt_update_once() {
  (( APT_UPDATED )) && return 0
  APT_UPDATED=1
  say "apt-get update"
  # Third-party sources may be unreachable; Debian's own lists are what we need.
  apt-get update -qq >"$LOGS/apt.log" 2>&1 || say "apt-get update reported errors (see $LOGS/apt.log); continuing"
}

POLICY=/usr/sbin/policy-rc.d
restore_policy() {
  if [[ -e $POLICY.cookbook-bak ]]; then mv -f "$POLICY.cookbook-bak" "$POLICY"
  elif [[ -e $POLICY.cookbook-ours ]]; then rm -f "$POLICY" "$POLICY.cookbook-ours"; fi
}

ensure_packages() {
  local want=()
  command -v dockerd >/dev/null 2>&1 || want+=(docker.io)
  command -v docker >/dev/null 2>&1 || command -v dockerd >/dev/null 2>&1 || want+=(docker.io)
  { command -v containerd && command -v containerd-shim-runc-v2 && command -v ctr; } >/dev/null 2>&1 || want+=(containerd)
  command -v runc >/dev/null 2>&1 || want+=(runc)
  [[ -x /usr/bin/docker-registry ]] || want+=(docker-registry)
  dpkg -s busybox-static >/dev/null 2>&1 || want+=(busybox-static)
  command -v git >/dev/null 2>&1 || want+=(git)
  command -v curl >/dev/null 2>&1 || want+=(curl)
  command -v setsid >/dev/null 2>&1 || want+=(util-linux)
  (( ${#want[@]} )) || return 0
  mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)

  (( EUID == 0 )) || die "need root to install: ${want[*]}"
  mkdir -p "$LOGS"
  # Keep package maintainer scripts from starting system services (docker,
  # containerd, docker-registry on :5000): we run our own processes.
  if [[ -e $POLICY ]]; then cp -p "$POLICY" "$POLICY.cookbook-bak"; else : >"$POLICY.cookbook-ours"; fi
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' >"$POLICY"; chmod 755 "$POLICY"

  apt-cache show "${want[@]}" >/dev/null 2>&1 || apt_update_once
  say "apt-get install ${want[*]}"
  local args=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if ! DEBIAN_FRONTEND=noninteractive apt-get install "${args[@]}" "${want[@]}" >>"$LOGS/apt.log" 2>&1; then
    if (( APT_UPDATED )); then tail -n 30 "$LOGS/apt.log" >&2; die "apt-get install failed"; fi
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install "${args[@]}" "${want[@]}" >>"$LOGS/apt.log" 2>&1 \
      || { tail -n 30 "$LOGS/apt.log" >&2; die "apt-get install failed"; }
  fi
  restore_policy; trap - EXIT

  # Never leave a boot-time service of the packaged registry/engine behind
  # (the Debian registry would otherwise own :5000 with its own config).
  local svcs=() svc
  [[ " ${want[*]} " == *" docker-registry "* ]] && svcs+=(docker-registry)
  [[ " ${want[*]} " == *" docker.io "* ]] && svcs+=(docker docker.socket)
  [[ " ${want[*]} " == *" containerd "* ]] && svcs+=(containerd)
  for svc in "${svcs[@]}"; do
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif command -v systemctl >/dev/null 2>&1; then
      systemctl disable "$svc" >/dev/null 2>&1 || true   # works offline: drops the boot symlinks
    fi
    if [[ -x /etc/init.d/${svc%.socket} && $svc != *.socket ]]; then
      update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
  say "packages installed"
}

# ---------------------------------------------------------------- services

storage_driver() {
  if [[ -n ${COOKBOOK_DOCKER_STORAGE_DRIVER:-} ]]; then echo "$COOKBOOK_DOCKER_STORAGE_DRIVER"; return; fi
  local d; d=$(mktemp -d "$STATE/.ovl.XXXXXX")
  mkdir -p "$d/l" "$d/u" "$d/w" "$d/m"
  if mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
    umount "$d/m"; rm -rf "$d"; echo overlay2
  else
    rm -rf "$d"; echo vfs
  fi
}

start_containerd() {
  if containerd_answers; then return 0; fi
  stop containerd 10   # one we started earlier that no longer answers
  mkdir -p "$CTRD_DIR/root" "$CTRD_DIR/state" "$CTRD_DIR/opt"
  rm -f "$CTRD_SOCK" "$CTRD_SOCK.ttrpc"
  cat >"$CTRD_DIR/config.toml" <<EOF
version = 2
root = "$CTRD_DIR/root"
state = "$CTRD_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTRD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD_DIR/opt"
EOF
  say "starting containerd"
  spawn containerd containerd --config "$CTRD_DIR/config.toml" --log-level warn
  wait_until containerd 30 containerd_answers
}

start_dockerd() {
  local driver; driver=$(storage_driver)
  mkdir -p "$STATE/docker-data" "$STATE/docker-exec"
  [[ -f $STATE/daemon.json ]] || echo '{}' >"$STATE/daemon.json"
  stop dockerd 40      # one we started earlier that no longer answers
  rm -f "$DOCKER_SOCK" "$STATE/dockerd.pid"
  say "starting dockerd (storage $driver)"
  # --bridge=none/--iptables=false/--ip-forward=false/--ip-masq=false: no docker0
  # bridge, no 172.17/16 addresses, no netfilter or sysctl changes on the host.
  # --config-file: ignore any system /etc/docker/daemon.json.
  spawn dockerd dockerd \
    --host="$DOCKER_URL" \
    --data-root="$STATE/docker-data" \
    --exec-root="$STATE/docker-exec" \
    --pidfile="$STATE/dockerd.pid" \
    --config-file="$STATE/daemon.json" \
    --containerd="$CTRD_SOCK" \
    --storage-driver="$driver" \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false \
    --default-address-pool "base=$POOL,size=24" \
    --insecure-registry="127.0.0.1:$REG_PORT" \
    --log-level=warn
  wait_until dockerd "$DOCKER_WAIT" docker_answers
}

# A system Docker engine that has run on this machine leaves the FORWARD policy
# at DROP with br_netfilter loaded, so frames between two containers on one
# bridge go through iptables and are dropped: our engine (--iptables=false)
# adds no rule, and a deployed web container resolves `api` but cannot connect
# to it. One rule accepts traffic between addresses of our pool, and nothing
# else; `down` removes it. Where it cannot be added, stop and say what to do.
FORWARD_RULE=(FORWARD -s "$POOL" -d "$POOL" -m comment --comment "cookbook-services $STATE" -j ACCEPT)
bridged_frames_filtered() {
  [[ $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null) == 1 ]]
}
forward_policy() { iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" { print $3; exit }'; }
ensure_forwarding() {
  bridged_frames_filtered || return 0
  local policy; policy=$(forward_policy || true)
  [[ $policy == ACCEPT ]] && return 0
  if [[ -z $policy ]]; then
    say "WARNING: br_netfilter is on and the FORWARD policy cannot be read (iptables missing or not root): if it is DROP, deployed containers cannot reach each other (iptables -I FORWARD -s $POOL -d $POOL -j ACCEPT)"
    return 0
  fi
  if { iptables -C "${FORWARD_RULE[@]}" 2>/dev/null || iptables -I "${FORWARD_RULE[@]}" 2>/dev/null; }; then
    say "FORWARD policy is ${policy}: accepting traffic inside $POOL (removed by down)"
    return 0
  fi
  die "bridged traffic goes through iptables here (br_netfilter is on) and the FORWARD policy is $policy: containers of the private engine could not reach each other.
  Run this script as root so it can add one rule, or add it yourself:
    iptables -I FORWARD -s $POOL -d $POOL -j ACCEPT
  (or let bridged traffic bypass iptables: sysctl net.bridge.bridge-nf-call-iptables=0)"
}
remove_forwarding() {
  command -v iptables >/dev/null 2>&1 || return 0
  while iptables -C "${FORWARD_RULE[@]}" 2>/dev/null; do iptables -D "${FORWARD_RULE[@]}" || break; done
}

start_registry() {
  local dir=$STATE/registry
  stop registry 10     # one we started earlier that no longer answers here
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$REG_PORT
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  say "starting registry on 127.0.0.1:$REG_PORT"
  spawn registry /usr/bin/docker-registry serve "$dir/config.yml"
  wait_until registry 30 registry_answers
}

start_git_daemon() {
  stop git-daemon 10   # one we started earlier that no longer answers here
  mkdir -p "$STATE/git"
  [[ -d $STATE/git/$GIT_PROBE ]] || git init -q --bare "$STATE/git/$GIT_PROBE"
  say "starting git daemon on 127.0.0.1:$GIT_PORT"
  # Exec git-daemon directly (not via the `git` wrapper) so the pid we record
  # is the daemon itself; safe.directory=* lets it serve repos of any owner.
  spawn git-daemon env GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*' \
    "$(git --exec-path)/git-daemon" --listen=127.0.0.1 --port="$GIT_PORT" \
    --base-path="$STATE/git" --export-all --enable=receive-pack --reuseaddr --informative-errors
  wait_until git-daemon 30 git_answers
}

build_base_image() {
  local ctx; ctx=$(mktemp -d "$STATE/.base.XXXXXX")
  cp /bin/busybox "$ctx/busybox"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && /bin/busybox mkdir -p /etc /root /tmp /usr/bin /sbin /usr/sbin && /bin/busybox chmod 1777 /tmp && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> /etc/passwd && echo 'root:x:0:' > /etc/group && echo 'nogroup:x:65534:' >> /etc/group"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.opencontainers.image.title="cookbook test base (busybox-static)"
CMD ["/bin/sh"]
EOF
  say "building $BASE_IMAGE"
  if ! docker_cli build -q -t "$BASE_IMAGE" "$ctx" >"$LOGS/base-build.log" 2>&1; then
    rm -rf "$ctx"; tail -n 30 "$LOGS/base-build.log" >&2; die "building $BASE_IMAGE failed"
  fi
  rm -rf "$ctx"
}

smoke_build() {
  local ctx tag=cookbook-test/smoke:latest; ctx=$(mktemp -d "$STATE/.smoke.XXXXXX")
  printf 'FROM %s\nRUN echo hi > /x\nRUN test "$(cat /x)" = hi\n' "$BASE_IMAGE" >"$ctx/Dockerfile"
  if ! docker_cli build -q -t "$tag" "$ctx" >"$LOGS/smoke-build.log" 2>&1; then
    rm -rf "$ctx"; tail -n 30 "$LOGS/smoke-build.log" >&2; die "smoke build (RUN step) failed"
  fi
  rm -rf "$ctx"
  docker_cli rmi -f "$tag" >/dev/null 2>&1 || true
  say "smoke build with a RUN step: ok"
}

# ---------------------------------------------------------------- commands

# Serialise concurrent up/down. fd 9 is closed in every spawned daemon (spawn).
lock() {
  exec 9>"$STATE/.lock"
  flock -w 600 9 || die "another services.sh holds $STATE/.lock"
}

cmd_up() {
  mkdir -p "$PIDS" "$LOGS"
  lock
  ensure_packages
  ensure_forwarding
  local changed=0
  if docker_answers; then
    :
  else
    start_containerd
    start_dockerd
    changed=1
  fi
  registry_answers || start_registry
  if ! git_answers; then
    if tcp_open "$GIT_PORT"; then
      say "WARNING: 127.0.0.1:$GIT_PORT is taken by something not serving $STATE/git; leaving it alone"
    else
      start_git_daemon
    fi
  fi
  if ! docker_cli image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    build_base_image; changed=1
  fi
  if (( changed )) || [[ ${COOKBOOK_SERVICES_SMOKE:-0} == 1 ]]; then smoke_build; fi
  say "up: docker $DOCKER_URL, registry 127.0.0.1:$REG_PORT, git 127.0.0.1:$GIT_PORT, image $BASE_IMAGE"
}

cmd_down() {
  mkdir -p "$PIDS"
  lock
  # Kill running containers first: dockerd's shutdown would give each 10 s.
  if pid_of dockerd >/dev/null && docker_answers; then
    local ids; ids=$(docker_cli ps -q 2>/dev/null || true)
    [[ -z $ids ]] || docker_cli kill $ids >/dev/null 2>&1 || true
  fi
  stop dockerd 40
  stop containerd 20
  # Shims of our containerd outlive it if dockerd died uncleanly.
  local p
  for p in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $CTRD_SOCK( |\$)" || true); do kill -TERM "$p" 2>/dev/null || true; done
  stop registry 10
  stop git-daemon 10
  remove_forwarding
  say "down"
}

cmd_env() {
  cat <<EOF
export DOCKER_HOST=$DOCKER_URL
export COOKBOOK_TEST_REGISTRY=127.0.0.1:$REG_PORT
export COOKBOOK_TEST_GIT=git://127.0.0.1:$GIT_PORT
export COOKBOOK_TEST_GIT_ROOT=$STATE/git
export COOKBOOK_TEST_BASE_IMAGE=$BASE_IMAGE
export COOKBOOK_SERVICES_DIR=$STATE
EOF
}

cmd_status() {
  local n
  for n in containerd dockerd registry git-daemon; do
    if p=$(pid_of "$n"); then echo "$n: running (pid $p, started by up)"; else echo "$n: not started by up"; fi
  done
  docker_answers && echo "docker: answers on $DOCKER_URL" || echo "docker: no answer on $DOCKER_URL"
  registry_answers && echo "registry: answers on 127.0.0.1:$REG_PORT" || echo "registry: no answer on 127.0.0.1:$REG_PORT"
  git_answers && echo "git: answers on 127.0.0.1:$GIT_PORT" || echo "git: no answer on 127.0.0.1:$GIT_PORT"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
