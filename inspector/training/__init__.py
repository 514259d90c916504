"""Datasets, metrics and evaluation of defect classifiers (torch-free parts of training)."""
