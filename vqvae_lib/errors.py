"""Errors about user input. Messages name the file involved and say what to do."""


class DataError(ValueError):
    """A data folder or image cannot be used (missing, corrupt, wrong format)."""


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, or does not match the requested model."""


class TrainingError(RuntimeError):
    """Training cannot continue (e.g. a non-finite loss)."""
