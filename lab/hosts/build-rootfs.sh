#!/usr/bin/env bash
# Builds the HostLab's Debian 12 root filesystem (the "AMI") and the local apt repository (the "mirror").
# Called by lab/hosts/rootfs.ts under a lock (flock); see there for the why. Everything is built in
# "$OUT.tmp-$$" and renamed to "$OUT" only when complete, so a half-built rootfs is never used.
#
# Environment (all required):
#   OUT               final directory (<cache>/rootfs-<hash>)
#   MIRROR            Debian archive, e.g. http://deb.debian.org/debian
#   SECURITY_MIRROR   Debian security archive, e.g. http://deb.debian.org/debian-security
#   SUITE             bookworm
#   INCLUDE           comma-separated packages for debootstrap --include
#   BASE_PACKAGES     space-separated packages installed into the rootfs (the AMI's extras)
#   REPO_PACKAGES     space-separated packages whose dependency closure goes into the local repository
#   CA_CERT           PEM file of the lab CA, trusted by the rootfs
#
# Result:
#   $OUT/rootfs                        the root filesystem (overlay lower dir of every host)
#   $OUT/mirror/debian/{dists,pool}    the apt repository; serve $OUT/mirror as http://deb.debian.org/
#   $OUT/mirror-key.asc                the repository's public signing key (also in the rootfs)
#   $OUT/build.log, $OUT/manifest.txt  full build output, installed packages
set -euo pipefail

: "${OUT:?}" "${MIRROR:?}" "${SECURITY_MIRROR:?}" "${SUITE:?}" "${INCLUDE:?}" "${BASE_PACKAGES:?}" "${REPO_PACKAGES:?}"
: "${CA_CERT:?}"

if [[ -f $OUT/complete ]]; then
  echo "[rootfs] already built by another process: $OUT"
  exit 0
fi

# We hold the build lock: any other temp dir is a crashed build's leftover.
rm -rf "$OUT".tmp-*
T="$OUT.tmp-$$"
R="$T/rootfs"
start=$SECONDS
rm -rf "$T"
mkdir -p "$T"
LOG="$T/build.log"
: >"$LOG"

step() { echo "[rootfs] $(date +%T) (+$((SECONDS - start))s) $*"; }
# Runs a command with its output going to the log; on failure shows the log's tail.
logged() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "[rootfs] FAILED: $*" >&2
    tail -n 40 "$LOG" >&2
    return 1
  fi
}

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
  if [[ ! -f $OUT/complete ]]; then
    echo "[rootfs] build did not complete; removing $T" >&2
    rm -rf "$T"
  fi
}
trap cleanup EXIT

chroot_mounts() {
  mount -t proc proc "$R/proc" && mounted+=("$R/proc")
  mount -t sysfs sysfs "$R/sys" && mounted+=("$R/sys")
  mount --bind /dev "$R/dev" && mounted+=("$R/dev")
  mount --bind /dev/pts "$R/dev/pts" && mounted+=("$R/dev/pts")
}
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

arch=$(dpkg --print-architecture)

step "debootstrap --variant=minbase $SUITE from $MIRROR (about 1 minute)"
logged debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$R" "$MIRROR"

step "configuring apt for the build (same suites as this machine: $SUITE, $SUITE-updates, $SUITE-security)"
cat >"$R/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
# No daemon may start inside the chroot while packages are installed.
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || : >"$R/etc/resolv.conf"
chroot_mounts
logged in_root apt-get update
step "upgrading to $SUITE-updates/$SUITE-security and installing: $BASE_PACKAGES"
logged in_root apt-get -y dist-upgrade
# shellcheck disable=SC2086 # word splitting of the package list is intended
logged in_root apt-get install -y $BASE_PACKAGES

# The AMI's locale (cloud-init's locale module would otherwise generate it at first boot).
if [[ -f $R/etc/locale.gen ]]; then
  sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' "$R/etc/locale.gen"
  logged in_root locale-gen
  echo "LANG=en_US.UTF-8" >"$R/etc/default/locale"
fi

step "downloading the repository packages with their dependency closure: $REPO_PACKAGES"
logged in_root apt-get clean
# shellcheck disable=SC2086
logged in_root apt-get install -y --download-only $REPO_PACKAGES
pool="$T/mirror/debian/pool/main"
mkdir -p "$pool"
shopt -s nullglob
debs=("$R"/var/cache/apt/archives/*.deb)
shopt -u nullglob
[[ ${#debs[@]} -gt 0 ]] || {
  echo "[rootfs] no .deb downloaded for: $REPO_PACKAGES" >&2
  exit 1
}
for f in "${debs[@]}"; do
  # The archive's pool names carry no epoch (apt's cache names encode it as "%3a").
  b=${f##*/}
  cp "$f" "$pool/${b/_[0-9]*%3a/_}"
done
logged in_root apt-get clean

step "generating the repository index (${#debs[@]} packages) and signing it"
dists="$T/mirror/debian/dists/$SUITE"
bin="$dists/main/binary-$arch"
mkdir -p "$bin"
(cd "$T/mirror/debian" && dpkg-scanpackages --multiversion pool /dev/null 2>>"$LOG") >"$bin/Packages"
gzip -9nk "$bin/Packages"
printf 'Archive: %s\nOrigin: Debian\nLabel: Debian\nComponent: main\nArchitecture: %s\n' "$SUITE" "$arch" >"$bin/Release"
{
  echo "Origin: Debian"
  echo "Label: Debian"
  echo "Suite: $SUITE"
  echo "Codename: $SUITE"
  echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
  echo "Architectures: $arch"
  echo "Components: main"
  echo "Description: redis-stack HostLab local mirror (dependency closure of: $REPO_PACKAGES)"
  for algo in MD5Sum:md5sum SHA256:sha256sum; do
    echo "${algo%%:*}:"
    for f in main/binary-$arch/Packages main/binary-$arch/Packages.gz main/binary-$arch/Release; do
      printf ' %s %s %s\n' "$(cd "$dists" && "${algo#*:}" "$f" | cut -d' ' -f1)" "$(stat -c %s "$dists/$f")" "$f"
    done
  done
} >"$dists/Release"
export GNUPGHOME="$T/gnupg"
mkdir -m 0700 "$GNUPGHOME"
logged gpg --batch --pinentry-mode loopback --passphrase '' --quick-generate-key \
  "redis-stack HostLab mirror <hostlab@localhost>" ed25519 sign never
logged gpg --batch --yes --clearsign -o "$dists/InRelease" "$dists/Release"
logged gpg --batch --yes --armor --detach-sign -o "$dists/Release.gpg" "$dists/Release"
gpg --batch --armor --export >"$T/mirror-key.asc"
gpg --batch --export >"$R/etc/apt/trusted.gpg.d/redis-stack-lab-mirror.gpg"
chmod 0644 "$R/etc/apt/trusted.gpg.d/redis-stack-lab-mirror.gpg"
gpgconf --kill all 2>/dev/null || true
rm -rf "$GNUPGHOME"
unset GNUPGHOME

step "configuring the rootfs like the EC2 AMI (apt source, cloud-init NoCloud, machine-id, lab CA)"
# apt: one source, resolved per host (/etc/hosts) to the lab's mirror stand-in.
echo "deb http://deb.debian.org/debian $SUITE main" >"$R/etc/apt/sources.list"
rm -f "$R"/etc/apt/sources.list.d/*
# cloud-init: NoCloud seed (written per host by the lab), the lab configures eth0 itself.
mkdir -p "$R/etc/cloud/cloud.cfg.d"
cat >"$R/etc/cloud/cloud.cfg.d/99-redis-stack-lab.cfg" <<'EOF'
# redis-stack HostLab: the seed is /var/lib/cloud/seed/nocloud; the lab configures eth0 itself.
datasource_list: [ NoCloud, None ]
network: {config: disabled}
# As Debian's cloud images: keep /etc/apt/sources.list (the lab points deb.debian.org at its mirror).
apt:
  preserve_sources_list: true
# /etc/hosts is written per host by the lab (it maps the AWS endpoints and the mirror).
manage_etc_hosts: false
# The root filesystem is an overlay: nothing to grow or resize.
growpart: {mode: "off"}
resize_rootfs: false
EOF
mkdir -p "$R/var/lib/cloud/seed/nocloud"
# The lab CA: awscli (botocore uses the system bundle on Debian) trusts the lab's AWS endpoint.
install -m 0644 "$CA_CERT" "$R/usr/local/share/ca-certificates/redis-stack-lab-ca.crt"
logged in_root update-ca-certificates
# A fresh image: empty machine-id (systemd makes one at first boot), no apt lists or cache.
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
rm -f "$R/usr/sbin/policy-rc.d"
: >"$R/etc/resolv.conf"
# shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
in_root dpkg-query -W -f '${Package} ${Version}\n' >"$T/manifest.txt"
for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[$i]}"; done
mounted=()
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb "$R"/var/log/apt/*
mkdir -p "$R/var/lib/apt/lists/partial"
rm -rf "$R"/tmp/* "$R"/var/tmp/*
find "$R/var/log" -type f -exec truncate -s 0 {} +

echo "$(date -u +%FT%TZ) built in $((SECONDS - start))s" >"$T/complete"
mv "$T" "$OUT"
step "done: $OUT"
