#!/usr/bin/env bash
# Installs the Debian packages the tests use, if any is missing.
# apt-get update runs first, because a fresh machine's package lists are empty.
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-deps: missing ${missing[*]}; install them (as root: apt-get install ${missing[*]})." >&2
  echo "install-deps: tests that need them are skipped outside CI and fail in CI." >&2
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
