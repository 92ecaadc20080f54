"""Launch the spatial_perception node on a full ROS 2 install (Humble, Jazzy, Kilted).

    ros2 launch spatial_vlm_ros perception.launch.py [params_file:=...] [namespace:=...] [detector:=...]

- params_file: ROS 2 parameter file (default: the package's config/perception.yaml);
- namespace:   namespace of the node (default: none);
- detector:    'external' or 'tabletop'; empty (default) keeps the file's value.
Without ``launch`` (PyPI ROS) the same is done by ``python -m spatial_vlm_ros.ros.run --params FILE``.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _perception_node(context):
    parameters = [LaunchConfiguration("params_file").perform(context)]
    detector = LaunchConfiguration("detector").perform(context)
    if detector:
        parameters.append({"detector": detector})
    return [Node(package="spatial_vlm_ros", executable="perception_node", name="spatial_perception",
                 namespace=LaunchConfiguration("namespace"), parameters=parameters, output="screen",
                 emulate_tty=True)]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("spatial_vlm_ros"), "config", "perception.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="ROS 2 parameter file of the spatial_perception node"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument("detector", default_value="",
                              description="'external' or 'tabletop'; empty keeps the parameter file's value"),
        OpaqueFunction(function=_perception_node),
    ])
