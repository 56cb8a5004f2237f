#!/usr/bin/env bash
# FFCV compiles against libturbojpeg and OpenCV found through pkg-config (Debian package names).
set -euo pipefail
if pkg-config --exists libturbojpeg opencv4 2>/dev/null; then
  exit 0
fi
packages="libturbojpeg0-dev libopencv-dev pkg-config"
need="FFCV needs libturbojpeg and OpenCV 4 with their pkg-config files (Debian/Ubuntu: $packages)"
if ! command -v apt-get >/dev/null; then
  echo "$need; this system has no apt-get: install them with its package manager, then rerun make install" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
  echo "$need; install them as root, then rerun make install" >&2
  exit 1
fi
sudo_=""; [ "$(id -u)" != 0 ] && sudo_=sudo
# Another apt process (unattended upgrades, a parallel install) may hold the dpkg lock: wait for
# it, at most 5 minutes, instead of failing at once.
wait_lock="-o DPkg::Lock::Timeout=300"
echo "installing system packages for FFCV: $packages"
$sudo_ apt-get $wait_lock update -qq
DEBIAN_FRONTEND=noninteractive $sudo_ apt-get $wait_lock install -y -qq $packages >/dev/null
