"""Serving a trained model outside torchclf's Python.

``export``: ONNX export, one graph from the raw columns to probabilities and labels that ONNX
Runtime runs anywhere.
"""
