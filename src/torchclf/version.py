"""The package's version, recorded in every model file it writes."""

__version__ = "0.1.0"

__all__ = ["__version__"]
