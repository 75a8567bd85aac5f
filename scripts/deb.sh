#!/usr/bin/env bash
# Builds the Debian package (make deb): dist/azegress_<version>_<arch>.deb.
#
# VERSION (default: the latest v* tag by git describe, else v0.0.0-git<commit>)
# is linked into the binary as main.version, so `azegress version` and the
# package name the same release. nfpm runs from tools/go.mod (see there).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
VERSION=${VERSION:-$(git describe --tags --match 'v[0-9]*' 2>/dev/null || echo "v0.0.0-git$rev")}

# Debian's version: no leading v; a git describe suffix (-N-gHASH) or a
# -git<commit> sorts after its release (+), a pre-release before it (~).
v=${VERSION#v}
case $v in
*-*)
	base=${v%%-*} rest=${v#*-}
	if [[ $rest =~ ^([0-9]+-g[0-9a-f]+|git[0-9a-f]+|gitunknown)$ ]]; then
		v="$base+${rest//-/.}"
	else
		v="$base~${rest//-/.}"
	fi
	;;
esac
export DEB_VERSION=$v

goarch=$($GO env GOARCH)
case $goarch in
386) DEB_ARCH=i386 ;;
arm) DEB_ARCH=armhf ;;
*) DEB_ARCH=$goarch ;;
esac
export DEB_ARCH

# Every file's mtime, the changelog's and the man page's date: the commit's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
date_iso=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

stage=dist/deb
rm -rf "$stage" dist/azegress_*.deb
mkdir -p "$stage"

CGO_ENABLED=0 $GO build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$stage/azegress" ./cmd/azegress

# One unit, deploy/systemd/azegress.service: the package's binary is in /usr/bin.
sed 's|/usr/local/bin/azegress|/usr/bin/azegress|g' deploy/systemd/azegress.service >"$stage/azegress.service"
if grep -n /usr/local "$stage/azegress.service"; then
	echo "deb: $stage/azegress.service still names /usr/local (above); extend the sed in $0" >&2
	exit 1
fi

$GO run ./cmd/azegress-man -date "${date_iso%%T*}" -version "$VERSION" "$stage/azegress" | gzip -9n >"$stage/azegress.1.gz"

# nfpm writes this as /usr/share/doc/azegress/changelog.Debian.gz.
cat >"$stage/changelog.yaml" <<YAML
- semver: $DEB_VERSION-1
  date: $date_iso
  packager: azegress maintainers <azegress@users.noreply.github.com>
  deb:
    urgency: medium
    distributions: [unstable]
  changes:
    - note: "Built from $VERSION; the changes are in the git history."
YAML

$GO tool -modfile=tools/go.mod nfpm package --config deploy/debian/nfpm.yaml --packager deb --target dist/ >&2
deb="dist/azegress_${DEB_VERSION}-1_${DEB_ARCH}.deb"
[ -f "$deb" ] || { echo "deb: nfpm did not write $deb" >&2; exit 1; }
echo "$deb"
