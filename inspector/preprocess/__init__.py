"""Frame corrections between capture and tiling: flat-field, lens undistortion, scale."""
