"""ros subpackage of spatial_vlm_ros."""
