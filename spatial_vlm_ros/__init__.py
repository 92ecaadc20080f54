"""spatial_vlm_ros: metric spatial understanding for ROS 2 robots.

The ``core`` subpackage is ROS-free (numpy/scipy/opencv only); ``ros`` holds the thin node layer.
"""

__version__ = "0.1.0"
