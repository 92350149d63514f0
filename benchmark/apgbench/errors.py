"""apgbench's own error types: what a user can cause and fix, reported by the CLI as one sentence.

Every error apgbench raises on purpose for bad input, a missing resource or an environment that cannot do
what was asked derives from :class:`ApgbenchError`; the CLI prints its message in one red line (exit 1). Any
other exception is a bug and shows its traceback. Each class also derives from the built-in type that
callers caught before the hierarchy existed (``ValueError``, ``KeyError``...), so ``except ValueError``
keeps working. This module imports nothing from apgbench, so every layer can use it.

Hierarchy (subclasses elsewhere in parentheses)::

    ApgbenchError
    ├── InvalidInputError (ValueError)    a value, file or config that is wrong
    │     (ParameterError, ReaderError, RecordMismatchError, CorruptRecordError, archive errors)
    ├── UnknownIdError (KeyError)         an id that is not registered; suggests close ones
    ├── NotFoundError (FileNotFoundError) a file or folder that does not exist (DatasetNotPreparedError)
    └── UnavailableError (RuntimeError)   cannot be done here now
          (MethodUnavailableError, DownloadError, ManualDatasetError, RecordBusyError, StoreWriteError)
"""

from __future__ import annotations


class ApgbenchError(Exception):
    """Base of the errors that apgbench reports as one sentence (the message says what to do)."""


class InvalidInputError(ApgbenchError, ValueError):
    """A value, file or configuration given to apgbench is wrong."""


class UnknownIdError(ApgbenchError, KeyError):
    """An id (dataset, method, reader...) that is not registered; the message suggests close ones."""

    def __str__(self) -> str:  # KeyError would show the message's repr, quotes and all
        return str(self.args[0]) if self.args else ""


class NotFoundError(ApgbenchError, FileNotFoundError):
    """A file or folder that apgbench needs does not exist."""


class UnavailableError(ApgbenchError, RuntimeError):
    """What was asked cannot be done here now (a library, a device, a lock, the network, the disk)."""
