"""Synthetic models and data for tests and the out-of-the-box demo."""
