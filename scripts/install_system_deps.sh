#!/usr/bin/env bash
# FFCV compiles against libturbojpeg and OpenCV found through pkg-config (Debian package names).
set -euo pipefail
if pkg-config --exists libturbojpeg opencv4 2>/dev/null; then
  exit 0
fi
packages="libturbojpeg0-dev libopencv-dev pkg-config"
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
  echo "FFCV needs the system packages: $packages (install them as root, then rerun make install)" >&2
  exit 1
fi
sudo_=""; [ "$(id -u)" != 0 ] && sudo_=sudo
echo "installing system packages for FFCV: $packages"
$sudo_ apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq $packages >/dev/null
