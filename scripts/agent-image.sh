#!/usr/bin/env bash
# The agent as an image that cookbook builds of itself (docs/AGENT.md, "The agent as an image"):
#   1. a static `cookbook` binary (glibc linked in: +crt-static), release profile without debug
#      information (the image ships no debugger);
#   2. copied into cookbooks/agent/bin/ (git-ignored), the repository's own cookbook: one
#      container FROM scratch whose application has no build commands;
#   3. `cookbook apply` on that cookbook with the binary just built: assembled without an engine
#      and pushed (docs/REPRODUCIBILITY.md, "Engine-less builds").
#
#   scripts/agent-image.sh                                   # → 127.0.0.1:5000/cookbook/agent
#   COOKBOOK_AGENT_REGISTRY=registry.example/ops scripts/agent-image.sh   # → …/ops/agent
#   COOKBOOK_AGENT_REGISTRY= scripts/agent-image.sh          # no registry: --no-push, into the
#                                                            # engine at DOCKER_HOST
#
# A full release build: many minutes on a small machine. Not run by the test suite;
# tests/it/agent_packaging.rs checks the cookbook, the systemd unit and the Kubernetes objects.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=x86_64-unknown-linux-gnu
registry=${COOKBOOK_AGENT_REGISTRY-127.0.0.1:5000/cookbook}
# The registry cookbooks/agent/cookbook.json names; any other is given on standard input.
default_registry=127.0.0.1:5000/cookbook
book=$root/cookbooks/agent

step() { printf '%s [%ss] %s\n' "agent-image:" "$SECONDS" "$*" >&2; }

if [[ -n $registry && ! $registry =~ ^[A-Za-z0-9._:/-]+$ ]]; then
  echo "error: COOKBOOK_AGENT_REGISTRY=$registry is not a registry and path (host[:port][/path])" >&2
  exit 2
fi

step "building a static cookbook for $target (release)"
# Only the target's code gets +crt-static: with --target, RUSTFLAGS skip build scripts and
# proc macros, which must stay dynamic to be loaded by the host's compiler.
RUSTFLAGS='-C target-feature=+crt-static' \
  CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo \
  cargo build --release --locked --target "$target" --bin cookbook \
  --manifest-path "$root/Cargo.toml"
bin=${CARGO_TARGET_DIR:-$root/target}/$target/release/cookbook

# ldd says "not a dynamic executable" (static) or "statically linked" (static-pie) and, for a
# dynamic one, lists its libraries: the image has none of them.
linkage=$(ldd "$bin" 2>&1 || true)
if ! grep -Eq 'not a dynamic executable|statically linked' <<<"$linkage"; then
  printf 'error: %s is not static:\n%s\n' "$bin" "$linkage" >&2
  exit 1
fi
"$bin" --version >/dev/null
step "static: $(du -h "$bin" | cut -f1) ($linkage)"

install -m 0755 "$bin" "$book/bin/cookbook"

cd "$book"
export CI=true
if [[ -z $registry ]]; then
  step "applying $book without a registry (--no-push: loaded into the engine)"
  "$bin" apply --no-push
elif [[ $registry == "$default_registry" ]]; then
  step "applying $book, pushing to $registry"
  "$bin" apply
else
  step "applying $book, pushing to $registry"
  sed "s#\"registry\": \"$default_registry\"#\"registry\": \"$registry\"#" cookbook.json |
    "$bin" apply -f -
fi
step "done: cookbooks/agent/cookbook.lock names the image and its digest"
