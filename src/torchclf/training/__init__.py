"""The ways to train.

``fit`` and its plan, the autograd loop, the history, calibration, blending and thresholds,
Parquet streaming, sweeps and the lesson's improvements.
"""
