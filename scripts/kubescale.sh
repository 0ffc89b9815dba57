#!/usr/bin/env bash
# The Kubernetes source at scale (issue #12; PERFORMANCE.md "Kubernetes
# source at scale"): the fake API server (tests/support/kube_api.rs) holds
# 10,000 Services with an EndpointSlice each (3 endpoints), 30,000 Pods and
# 100 Nodes; a real `strait run --kubernetes` watches it. Prints start to
# /ready, RSS at ready and at rest after the changes, an endpoint change
# (two Pods relabelled) and a VirtualService change, each from the write to
# the fake until 3 requests in a row reach the new target, and CPU at rest.
#
#   scripts/kubescale.sh [PROFILE] [--log]
#
# PROFILE: `release` (default) or `dist`; both the fake and strait are
# built with it. --log: strait's log beside the test's, with timestamps,
# RSS every 250 ms and how long the fake took to answer the lists.
# Measure on a quiet machine: the fake, the load and strait share its CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-release}
if [[ "${2:-}" == "--log" || "${1:-}" == "--log" ]]; then
  [[ "$PROFILE" == "--log" ]] && PROFILE=release
  export KUBESCALE_LOG=1 RUST_LOG=${RUST_LOG:-info,strait::reload=debug}
fi
cargo test --profile "$PROFILE" --test it kube_watch::scale -- --ignored --nocapture
