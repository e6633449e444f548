"""Typed errors. Anything a user can cause is a `PicaividError` subclass with a one-line message.

The CLI and the workers catch `PicaividError` and report `str(err)`; anything else is a bug and is
logged with its traceback, never shown to a user.
"""

from __future__ import annotations


class PicaividError(Exception):
    """Base class for errors with a user-facing, one-line explanation."""

    #: Process exit status the CLI uses for this error.
    exit_code: int = 1
    #: Permanent errors fail the job; transient ones may be retried.
    permanent: bool = True


class InvalidInputError(PicaividError):
    """The user's input cannot be used (bad photo, bad music, bad edit)."""

    exit_code = 2


class ImageRejectedError(InvalidInputError):
    """One photo cannot be used. `reason` is a short machine-readable code."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


class NoUsablePhotosError(InvalidInputError):
    """Every photo of a job was rejected or excluded."""


class AudioError(InvalidInputError):
    """The music track cannot be decoded or is unusable (silent, too short, broken)."""


class SettingsError(PicaividError):
    """A setting (environment variable or .env entry) has a value that cannot be used. The message is one
    line naming the setting and the bad value (secrets are not repeated)."""

    exit_code = 2


class JobNotFoundError(PicaividError):
    exit_code = 2

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} does not exist")


class PhaseOrderError(PicaividError):
    """A phase was asked to run before the phases it depends on completed."""

    exit_code = 2


class FFmpegError(PicaividError):
    """ffmpeg failed. Carries the tail of its stderr for the job's error record."""

    permanent = False

    def __init__(self, message: str, stderr_tail: str = "") -> None:
        self.stderr_tail = stderr_tail
        super().__init__(message + (f": {stderr_tail}" if stderr_tail else ""))


class StorageError(PicaividError):
    permanent = False


class OutputVerificationError(PicaividError):
    """The assembled video does not match its timeline (duration, streams)."""


class EditRejectedError(InvalidInputError):
    """A timeline or job edit that cannot be applied (unknown clip, not a permutation, trim too short)."""


class JobBusyError(PicaividError):
    """The job is being worked on (a worker holds its lease, or phase 2 is rendering): a re-run or an edit
    has to wait until it stops."""

    exit_code = 3
    permanent = False


class RenderCancelled(Exception):
    """A render stopped because the worker is shutting down (SIGTERM, Spot notice). Deliberately not a
    `PicaividError`: it must not downgrade the clip to the next renderer or fail the job."""


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying `exc` is pointless. Bad input is permanent; database, storage, network and
    ffmpeg hiccups are not, and neither is an unexpected exception (a bug, or a poison message): those
    retry through the queue's visibility timeout until the redrive policy moves them to the DLQ."""
    return isinstance(exc, PicaividError) and exc.permanent
