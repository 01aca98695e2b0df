#!/bin/sh
# Containers through containerd's ctr, with the underlay-runc wrapper as the
# runc binary. Run as root with underlayd running.
set -e
underlay network create -d macvlan --subnet 192.168.50.0/24 --gateway 192.168.50.1 -o parent=eth0 lan50
ctr images pull docker.io/library/busybox:latest
ctr run -d --runc-binary /usr/local/bin/underlay-runc \
    --annotation io.underlay.network=lan50 \
    --annotation io.underlay.ip=192.168.50.10 \
    docker.io/library/busybox:latest web sleep 3600
ctr task exec --exec-id ip web ip addr show eth0
ctr task kill -s KILL web; ctr task rm web; ctr container rm web
