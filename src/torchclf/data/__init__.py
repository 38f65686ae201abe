"""Data: raw tables and arrays to tensors, splits, batches and the built-in datasets."""
