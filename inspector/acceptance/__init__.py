"""Acceptance of a line setup: ground truth, scoring of delivered events, the replay report."""
