#!/usr/bin/env bash
# Run a command with this package's ROS environment, confined to this machine.
#
#   scripts/ros_env.sh CMD [ARGS...]
#
# Always: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (Kilted ignores ROS_LOCALHOST_ONLY), the loopback-only
# Fast DDS profile (config/fastdds_localhost.xml), logs under ./log/ros, the venv and the colcon install
# (with the package's executables on PATH: spatial_vlm, perception_node, vlm_node).
# With SVR_ISOLATE=1 (the default for tests): also a private network + mount namespace (only `lo`, up)
# with a private /dev/shm and a ROS_DOMAIN_ID of its own. Needs root or unprivileged user namespaces;
# otherwise it falls back to the LOCALHOST range alone and says so.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ "${SVR_ISOLATE:-0}" = 1 ] && [ -z "${SVR_IN_NAMESPACE:-}" ]; then
  inner='mount -t tmpfs -o size=2g tmpfs /dev/shm && ip link set lo up && exec "$@"'
  if unshare -nm --propagation private true 2>/dev/null; then
    exec unshare -nm --propagation private env SVR_IN_NAMESPACE=1 bash -c "$inner" _ "$0" "$@"
  elif unshare -rnm --propagation private true 2>/dev/null; then
    exec unshare -rnm --propagation private env SVR_IN_NAMESPACE=1 bash -c "$inner" _ "$0" "$@"
  else
    echo "ros_env.sh: cannot create a network namespace (needs root or user namespaces);" \
         "falling back to ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST only" >&2
  fi
fi

export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
unset ROS_LOCALHOST_ONLY ROS_STATIC_PEERS
if [ -n "${SVR_IN_NAMESPACE:-}" ] && [ -z "${ROS_DOMAIN_ID:-}" ]; then
  export ROS_DOMAIN_ID=$(( 100 + RANDOM % 100 ))
fi
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-0}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$root/config/fastdds_localhost.xml}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$root/log/ros}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
mkdir -p "$ROS_LOG_DIR"

if [ -f "$root/.venv/bin/activate" ] && [ -z "${VIRTUAL_ENV:-}" ]; then
  # shellcheck disable=SC1091
  source "$root/.venv/bin/activate"
fi
if [ -f "$root/install/local_setup.bash" ]; then
  # colcon's scripts read unset variables
  set +u
  # shellcheck disable=SC1091
  source "$root/install/local_setup.bash"
  set -u
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# The package's executables (spatial_vlm, perception_node, vlm_node): colcon installs them where `ros2 run`
# looks, install/<package>/lib/<package>, which no setup script puts on PATH.
if [ -d "$root/install/spatial_vlm_ros/lib/spatial_vlm_ros" ]; then
  export PATH="$root/install/spatial_vlm_ros/lib/spatial_vlm_ros:$PATH"
fi
exec "$@"
