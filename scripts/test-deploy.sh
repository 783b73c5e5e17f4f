#!/usr/bin/env bash
# `make test-deploy`: the Ansible role converged, for real, into a fresh Debian 12 root through
# Ansible's chroot connection, the appliance run there as its units run it, a second converge
# that must change nothing, ansible-lint and systemd-analyze over the installed units
# (tests/deploy/test_converge.py). Needs root (chroot, mounts), debootstrap and Debian's mirror (the base root
# and the role's apt packages), and the wheelhouse (`make wheelhouse`, which make test-deploy
# builds first).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache/deploy
mkdir -p "$cache"

if [ "$(id -u)" -ne 0 ]; then
    echo "test-deploy: needs root (chroot and mounts)" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    apt-get update -q >/dev/null
    apt-get install -y -q debootstrap >/dev/null
}

# Ansible with the chroot connection (community.general) and ansible-lint, in a venv of their
# own: their pins are not the appliance's.
deploy_venv=$cache/venv
if ! cmp -s requirements/deploy.txt "$deploy_venv/.requirements"; then
    rm -rf "$deploy_venv"
    python3 -m venv "$deploy_venv"
    "$deploy_venv/bin/pip" install -q --disable-pip-version-check -r requirements/deploy.txt
    cp requirements/deploy.txt "$deploy_venv/.requirements"
fi

# A fresh Debian 12 server as a base: minbase plus what every real one has (python3, which
# Ansible needs, and systemd). Built once and kept as a tarball; every run unpacks a new root.
packages=python3,systemd,systemd-sysv
base=$cache/debian12-base.tar
if [ ! -f "$base" ] || [ "$(cat "$base.packages" 2>/dev/null)" != "$packages" ]; then
    rm -rf --one-file-system "$cache/build"
    debootstrap --variant=minbase --include="$packages" bookworm "$cache/build" \
        http://deb.debian.org/debian >"$cache/debootstrap.log"
    tar -C "$cache/build" -cf "$base.partial" .
    mv "$base.partial" "$base"
    echo "$packages" >"$base.packages"
    rm -rf --one-file-system "$cache/build"
fi

root=$PWD/$cache/root
unmount() {
    for mount in dev/shm proc sys; do
        if mountpoint -q "$root/$mount"; then umount -l "$root/$mount"; fi
    done
}
unmount
rm -rf --one-file-system "$root"
mkdir -p "$root"
tar -C "$root" -xf "$base"
trap unmount EXIT
# What a booted box has and a chroot lacks: /proc (onnxruntime and llama.cpp size their thread
# pools from it), /sys read-only, a /dev/shm, and a resolver for the role's apt packages.
mount -t proc proc "$root/proc"
mount --bind -o ro /sys "$root/sys"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
cp /etc/resolv.conf "$root/etc/resolv.conf"

APPLIANCE_DEPLOY_ROOT=$root APPLIANCE_DEPLOY_VENV=$PWD/$deploy_venv \
    .venv/bin/pytest -p no:cacheprovider -v --durations=8 tests/deploy/test_converge.py "$@"
