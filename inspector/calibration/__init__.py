"""Calibration: INT8 quantisation of a model from sample images (camera calibration joins later)."""
