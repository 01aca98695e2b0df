#!/bin/sh
# Containers through podman, which reads the hook from hooks.d.
# Install once: cp contrib/hooks.d/underlay.json /usr/share/containers/oci/hooks.d/
set -e
underlay network create -d macvlan --subnet 192.168.50.0/24 --gateway 192.168.50.1 -o parent=eth0 lan50
podman run -d --name web --network none \
    --annotation io.underlay.network=lan50 \
    docker.io/library/busybox sleep 3600
podman exec web ip addr show eth0
podman rm -f web
