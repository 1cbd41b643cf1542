"""Exceptions raised by automed.

Every message names where the problem is, what is wrong and, when known, how to fix it.
"""

__all__ = ["AutomedError", "DataError", "RecipeError", "RunFolderError"]


class AutomedError(Exception):
    """Base class of every error automed raises on purpose."""


class DataError(AutomedError, ValueError):
    """A dataset, image or label file is unusable as given."""


class RecipeError(AutomedError, ValueError):
    """A recipe (or one of its parameters) is invalid."""


class RunFolderError(AutomedError):
    """A run folder is missing, incomplete, or would be overwritten."""
