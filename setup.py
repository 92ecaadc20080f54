"""ament_python package spatial_vlm_ros (the repository root)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "spatial_vlm_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml")),
        ("share/" + PACKAGE + "/config/sensors", glob("config/sensors/*.yaml")),
        ("share/" + PACKAGE + "/models", glob("models/*.yaml") + glob("models/*.md")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="spatial_vlm_ros maintainers",
    maintainer_email="maintainers@spatial-vlm-ros.invalid",
    description="Metric spatial understanding for ROS 2 from RGB-D.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "perception_node = spatial_vlm_ros.ros.perception_node:main",
            "vlm_node = spatial_vlm_ros.ros.vlm_node:main",
            "spatial_vlm = spatial_vlm_ros.cli:main",
        ],
    },
)
