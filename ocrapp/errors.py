"""Exit codes and the one exception family that the CLI turns into a one-line error.

Like OCRmyPDF's ExitCode: one enum so that ``--help``, the README and the tests agree.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1  # a bug: please report it
    BAD_ARGS = 2  # wrong command-line usage (also typer's usage errors)
    INPUT_FILE = 3  # missing, empty, unreadable, truncated, wrong type, a directory, too large
    ENCRYPTED_PDF = 4  # a PDF that needs a password
    MODEL = 5  # missing or mismatched weight file
    OUTPUT_FILE = 6  # cannot write the output
    PARTIAL = 7  # batch: some inputs failed (the others were written)
    INTERRUPTED = 130


class OcrError(Exception):
    """An error with a user-facing one-line message and an exit code."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(OcrError, ValueError):
    """Bad command-line values found outside typer's parsing (e.g. a --pages range)."""

    exit_code = ExitCode.BAD_ARGS


class InputFileError(OcrError):
    exit_code = ExitCode.INPUT_FILE


class EncryptedPdfError(InputFileError):
    exit_code = ExitCode.ENCRYPTED_PDF


class ModelError(OcrError):
    exit_code = ExitCode.MODEL


class OutputFileError(OcrError):
    exit_code = ExitCode.OUTPUT_FILE


EXIT_CODE_HELP = "\n".join(
    f"{code.value}  {code.name.lower()}" for code in ExitCode
)
