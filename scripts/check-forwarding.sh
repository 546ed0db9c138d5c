#!/usr/bin/env bash
# Shows that the private engine's deployed containers reach each other on a
# host where a system Docker engine has run before: such an engine leaves the
# iptables FORWARD policy at DROP with br_netfilter on. This script puts the
# host in that state, runs `scripts/services.sh up` (which must add its one
# ACCEPT rule for its pool, or stop with a message) and the three-tier deploy
# test (web → api → db over the stage's network), then puts the policy back.
#
#   sudo bash scripts/check-forwarding.sh
#
# It changes the host's firewall for the length of the run: use it on a test
# machine or inside a network namespace of its own, not on a shared host.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null) == 1 ]] || {
  echo "br_netfilter is off here (net.bridge.bridge-nf-call-iptables is not 1): bridged traffic skips iptables, nothing to check" >&2
  exit 0
}
before=$(iptables -S FORWARD | awk '$1 == "-P" { print $3; exit }')
trap 'iptables -P FORWARD "$before"' EXIT
iptables -P FORWARD DROP
bash scripts/services.sh up
eval "$(bash scripts/services.sh env)"
export COOKBOOK_REQUIRE_SERVICES=1
cargo test --locked --test it deploy_shop::
