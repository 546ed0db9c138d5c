#!/usr/bin/env bash
# The project's one test command (README, .ci/run): provisions what the tests need on a fresh
# Debian machine (Docker engine, registry, git daemon, a FROM-scratch busybox base image), runs
# every test against them, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

bash scripts/services.sh up
# Graphviz renders `plan --format dot` in tests/it/plan.rs.
if ! command -v dot >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq graphviz >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; }
fi
# promtool (Debian's prometheus package) lints the agent's /metrics text (tests/it/agent_metrics.rs).
if ! command -v promtool >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; }
fi
# Debian's sshd serves `ssh://` engines on loopback in tests/it/remote_engine.rs, started by the
# test itself: a policy-rc.d that exits 101 keeps the package from starting it as a service.
if [[ ! -x /usr/sbin/sshd ]]; then
  export DEBIAN_FRONTEND=noninteractive
  (
    policy=/usr/sbin/policy-rc.d ours=
    [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; ours=1; }
    rc=0
    apt-get install -y -qq openssh-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null; } || rc=$?
    [[ -z $ours ]] || rm -f "$policy"
    exit $rc
  )
fi
# Headless Chromium loads the agent's dashboard in tests/it/dashboard.rs, through chromedriver.
if ! command -v chromedriver >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
fi
# kubernetes-validate checks `cookbook render`'s objects against Kubernetes' own schemas
# (tests/it/kubernetes.rs); pinned, as its schemas follow Kubernetes releases.
if ! command -v kubernetes-validate >/dev/null; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore kubernetes-validate==1.37.0 >/dev/null
fi
# The SPDX project's own validator checks `cookbook sbom`'s documents (tests/it/sbom.rs); pinned.
if ! command -v pyspdxtools >/dev/null; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore spdx-tools==0.8.5 >/dev/null
fi
trap 'bash scripts/services.sh down' EXIT
eval "$(bash scripts/services.sh env)"
# Service tests fail rather than skip when the services are missing (tests/it/common).
export COOKBOOK_REQUIRE_SERVICES=1

cargo test --locked
