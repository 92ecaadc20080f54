#!/usr/bin/env bash
# Debian packages the package needs at build and run time. Installs the missing ones when run as root
# (as on CI and fresh machines); otherwise prints the apt-get command to run.
set -euo pipefail
pkgs=(
  python3-venv python3-dev cmake g++ make   # venv + colcon build of spatial_vlm_interfaces
  iproute2 util-linux                        # private network namespace for tests (ip, unshare)
  libusb-1.0-0 libgomp1                      # open3d imports need libusb
  libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgles2 libglib2.0-0   # headless rendering (pyrender, EGL) and opencv
)
command -v dpkg-query >/dev/null 2>&1 || { echo "install_system_deps: not a Debian system; install the equivalents of: ${pkgs[*]}" >&2; exit 0; }
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "install_system_deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install_system_deps: missing Debian packages; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
