"""Seamline: human-in-the-loop visual inspection.

This package is the core both the edge and the cloud import.
"""

__version__ = "0.1.0"
