"""qaframe: a plugin-based framework for extractive question answering, Korean first."""

from importlib.metadata import PackageNotFoundError, version

from qaframe.hookspecs import hookimpl

try:
    __version__ = version("qaframe")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "hookimpl"]
