"""Content maps, placement map and SLIC Gaussian initialization."""

__version__ = "0.1.0"
