"""LGI, a Gaussian image codec: the umbrella command-line tool."""

__version__ = "0.1.0"
