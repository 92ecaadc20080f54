"""Launch the spatial_perception node on a full ROS 2 install (Humble, Jazzy, Kilted).

    ros2 launch spatial_vlm_ros perception.launch.py [params_file:=...] [namespace:=...] [detector:=...] \
        [depth_source:=...] [sensor_profile:=...]

- params_file: ROS 2 parameter file (default: the package's config/perception.yaml);
- namespace:   namespace of the node (default: none);
- detector:    'external', 'tabletop', 'boxes' (2D boxes on /camera/detections) or 'open_vocab';
               empty (default) keeps the file's value;
- depth_source: 'sensor', 'model' (RGB-only camera: no depth topic is subscribed) or 'fuse';
               empty (default) keeps the file's value;
- sensor_profile: the depth sensor's uncertainty profile loaded after params_file: 'gaussian', 'stereo',
               'tof' (the package's config/sensors/<name>.yaml) or a file's path; empty (default): none;
- autostart:   'false' leaves both nodes unconfigured for a lifecycle manager (they are lifecycle nodes;
               default 'true': configured and activated at start-up);
- with_vlm:    'true' also starts the spatial VLM node (vlm_node) with vlm_params_file (default config/vlm.yaml).
Without ``launch`` (PyPI ROS) the same is done by ``python -m spatial_vlm_ros.ros.run --params FILE``.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

DETECTORS = ("external", "tabletop", "boxes", "open_vocab")      # spatial_vlm_ros.pipeline.DETECTORS
DEPTH_SOURCES = ("sensor", "model", "fuse")
SENSOR_PROFILES = ("gaussian", "stereo", "tof")                  # spatial_vlm_ros.ros.run.SENSOR_PROFILES


def _sensor_profile_file(profile, config_dir):
    if profile in SENSOR_PROFILES:
        return os.path.join(config_dir, "sensors", profile + ".yaml")
    if os.path.isfile(profile):
        return profile
    raise RuntimeError(f"sensor_profile:={profile} is neither one of {', '.join(SENSOR_PROFILES)} nor a file")


def _perception_node(context):
    parameters = [LaunchConfiguration("params_file").perform(context)]
    profile = LaunchConfiguration("sensor_profile").perform(context)
    if profile:
        config_dir = os.path.join(get_package_share_directory("spatial_vlm_ros"), "config")
        parameters.append(_sensor_profile_file(profile, config_dir))
    overrides = {}
    for name, choices in (("detector", DETECTORS), ("depth_source", DEPTH_SOURCES)):
        value = LaunchConfiguration(name).perform(context)
        if value and value not in choices:
            raise RuntimeError(f"{name}:={value} is not one of {', '.join(choices)}")
        if value:
            overrides[name] = value
    autostart = LaunchConfiguration("autostart").perform(context).lower()
    if autostart not in ("true", "false"):
        raise RuntimeError(f"autostart:={autostart} is not one of true, false")
    overrides["autostart"] = autostart == "true"
    parameters.append(overrides)
    nodes = [Node(package="spatial_vlm_ros", executable="perception_node", name="spatial_perception",
                  namespace=LaunchConfiguration("namespace"), parameters=parameters, output="screen",
                  emulate_tty=True)]
    if LaunchConfiguration("with_vlm").perform(context).lower() in ("true", "1", "yes"):
        nodes.append(Node(package="spatial_vlm_ros", executable="vlm_node", name="spatial_vlm",
                          namespace=LaunchConfiguration("namespace"),
                          parameters=[LaunchConfiguration("vlm_params_file").perform(context),
                                      {"autostart": overrides["autostart"]}],
                          output="screen", emulate_tty=True))
    return nodes


def generate_launch_description():
    config_dir = os.path.join(get_package_share_directory("spatial_vlm_ros"), "config")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=os.path.join(config_dir, "perception.yaml"),
                              description="ROS 2 parameter file of the spatial_perception node"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument("detector", default_value="",
                              description=f"{' | '.join(DETECTORS)}; empty keeps the parameter file's value"),
        DeclareLaunchArgument("depth_source", default_value="",
                              description=f"{' | '.join(DEPTH_SOURCES)} ('model': RGB-only camera, no depth "
                              "topic); empty keeps the parameter file's value"),
        DeclareLaunchArgument("sensor_profile", default_value="",
                              description=f"{' | '.join(SENSOR_PROFILES)} or a file: the depth sensor's "
                              "uncertainty profile, loaded after params_file; empty: none"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="true: configure and activate the (lifecycle) nodes at start-up; "
                              "false: leave them to a lifecycle manager"),
        DeclareLaunchArgument("with_vlm", default_value="false", description="Also start vlm_node"),
        DeclareLaunchArgument("vlm_params_file", default_value=os.path.join(config_dir, "vlm.yaml"),
                              description="ROS 2 parameter file of the spatial_vlm node"),
        OpaqueFunction(function=_perception_node),
    ])
