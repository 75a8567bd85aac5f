#!/usr/bin/env bash
# Makes the Debian bookworm root that make deb-test boots the package in
# (e2e/deb_test.go), unless DIR already holds one made from the same list.
#
# mmdebstrap, not debootstrap: from the same mirror, the same root took
# debootstrap 7m16s here and mmdebstrap 2m48s (apt downloads in parallel).
# minbase, and what the boot needs: systemd as init, curl as the proxy's
# client, procps (the package depends on it and the root has no network).
set -euo pipefail
dir=${1:?usage: deb-root.sh DIR}
mirror=${DEB_MIRROR:-http://deb.debian.org/debian}
include=systemd,systemd-sysv,dbus,curl,procps
stamp="bookworm minbase $include $mirror"

if [ -f "$dir/.azegress-root" ] && [ "$(cat "$dir/.azegress-root")" = "$stamp" ]; then
	exit 0
fi
rm -rf "$dir" "$dir.new"
mkdir -p "$(dirname "$dir")"
mmdebstrap --quiet --variant=minbase --include="$include" bookworm "$dir.new" "$mirror"
echo "$stamp" >"$dir.new/.azegress-root"
mv "$dir.new" "$dir"
