"""vlm subpackage of spatial_vlm_ros."""
