#!/usr/bin/env bash
# Build spatial_vlm_interfaces and spatial_vlm_ros with colcon into ./install, against the ROS 2 wheels
# in .venv (no system ROS needed). On a machine with ROS sourced, plain `colcon build` works as well.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
# PyPI-wheel workaround: the wheels' CMake configs live in the venv prefix, which no setup script adds.
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
touch "$venv/COLCON_IGNORE"
# colcon does not look inside a folder that is itself a package, so name both package folders.
colcon --log-base log/colcon build --base-paths . spatial_vlm_interfaces \
  --event-handlers console_cohesion- status- \
  --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF "$@" \
  2>&1 | grep -v "doesn't contain any 'local_setup" || true
test -f install/spatial_vlm_interfaces/share/spatial_vlm_interfaces/package.xml
test -x install/spatial_vlm_ros/lib/spatial_vlm_ros/perception_node
