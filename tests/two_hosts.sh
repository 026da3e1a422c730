#!/usr/bin/env bash
# Two test hosts on this machine for tests/test_multinode.py: the network namespaces labkit-a
# (10.77.0.1) and labkit-b (10.77.0.2), joined by a veth pair and reachable from nowhere else.
#   bash tests/two_hosts.sh up      # (re)create them; needs root and iproute2
#   bash tests/two_hosts.sh down    # remove them
set -euo pipefail
case "${1:-}" in
  up)
    "$0" down
    ip netns add labkit-a
    ip netns add labkit-b
    ip link add veth-a netns labkit-a type veth peer name veth-b netns labkit-b
    ip -n labkit-a addr add 10.77.0.1/24 dev veth-a
    ip -n labkit-b addr add 10.77.0.2/24 dev veth-b
    for host in a b; do
      ip -n "labkit-$host" link set lo up
      ip -n "labkit-$host" link set "veth-$host" up
    done ;;
  down)
    for host in a b; do
      ip netns del "labkit-$host" 2>/dev/null || true
    done ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
