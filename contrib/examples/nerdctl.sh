#!/bin/sh
# Containers on a VLAN with nerdctl (v2 or later, for --annotation), through
# the underlay-runc wrapper. Run as root with underlayd running.
#
# NetOps trunks VLAN 10 to eth0; the gateway is 10.10.0.1.
set -e

# The VLAN sub-interface eth0.10 is created by underlayd (and removed when
# its last container leaves) if it does not exist yet.
underlay network create -d macvlan \
    --subnet 10.10.0.0/24 --gateway 10.10.0.1 --ip-range 10.10.0.128/25 \
    -o parent=eth0.10 vlan10

# Next free address from the range:
nerdctl run -d --name web1 \
    --runtime /usr/local/bin/underlay-runc --network none \
    --annotation io.underlay.network=vlan10 \
    nginx:alpine

# A fixed address and MAC:
nerdctl run -d --name web2 \
    --runtime /usr/local/bin/underlay-runc --network none \
    --annotation io.underlay.network=vlan10 \
    --annotation io.underlay.ip=10.10.0.20 \
    --annotation io.underlay.mac=02:42:0a:0a:00:14 \
    nginx:alpine

underlay endpoint ls
nerdctl exec web1 ip addr show eth0

# Removing the containers frees their addresses.
nerdctl rm -f web1 web2
