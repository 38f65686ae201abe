"""What is measured, drawn and written about a model.

Metrics, plots, predictions, and the run folder's report.
"""
