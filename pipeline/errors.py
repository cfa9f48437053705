"""The one error root of the pipeline.

Every error a user can cause names the file or option, the value given and what
would be valid. Only `sepipe.cli.main` catches these and turns them into one
line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import reprlib
from pathlib import Path

# What one error line may hold: a value is shown up to REPR_LIMIT characters, a whole line up to LINE_LIMIT.
REPR_LIMIT = 200
LINE_LIMIT = 2000


class PipelineError(Exception):
    """Base of every error the pipeline reports to a user."""

    exit_code = 2

    def __reduce__(self):
        # Subclasses take several constructor arguments, so Exception's default pickling (cls(*args))
        # fails; rebuild from the message and the attributes instead, so an error raised in a worker
        # process (Ray, multiprocessing) reaches the driver with its type and fields.
        return _rebuild_error, (type(self), self.args, dict(self.__dict__))


def _rebuild_error(cls: type, args: tuple, state: dict) -> PipelineError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigError(PipelineError):
    """A configuration key or value is wrong."""

    def __init__(self, source: str | Path, key: str, value: object, valid: str):
        self.source, self.key, self.value, self.valid = str(source), key, value, valid
        super().__init__(f"{source}: option '{shown_text(key)}' = {short_repr(value)} is not valid; expected {valid}")


def short_repr(value: object, limit: int = REPR_LIMIT) -> str:
    """repr(value) cut to `limit` characters, without building the whole repr first: a value from a
    YAML alias bomb can nest 10**8 items in 1 KB of text, and its full repr takes gigabytes."""
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxstring, bounded.maxother, bounded.maxlong = 4, limit, limit, 60
    bounded.maxlist = bounded.maxtuple = bounded.maxdict = bounded.maxset = bounded.maxfrozenset = 12
    try:
        text = bounded.repr(value)
    except Exception:   # noqa: BLE001  (an int past Python's digit limit, a broken __repr__): say what it is
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shown_text(text: object, limit: int = REPR_LIMIT) -> str:
    """User text (a key, a name) shown inside a line: control characters escaped, cut to `limit`."""
    text = str(text)[:limit * 4]
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def one_line(text: str, limit: int = LINE_LIMIT) -> str:
    """`text` as one line of at most `limit` characters (what `sepipe.cli.main` prints for an error)."""
    text = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check(source: str | Path, key: str, value: object, ok: bool, valid: str) -> None:
    """Raise ConfigError(source, key, value, valid) unless `ok`: every config section validates with this."""
    if not ok:
        raise ConfigError(source, key, value, valid)


class UsageError(PipelineError):
    """A command line that does not parse (argparse's complaint, as one line)."""

    def __init__(self, prog: str, message: str):
        self.prog = prog
        super().__init__(f"{prog}: {shown_text(message, 500)} (see '{prog} --help')")


class InputFileError(PipelineError):
    """An input file is missing, unreadable or of the wrong kind."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class MissingArtifactError(PipelineError):
    """A stage needs the output of an earlier stage that is not there."""

    def __init__(self, path: str | Path, how_to_make: str):
        self.path = str(path)
        super().__init__(f"{path}: not found; {how_to_make}")


class ToolError(PipelineError):
    """An external tool (converter, compiler, interpreter) failed."""

    def __init__(self, tool: str, problem: str):
        self.tool = tool
        super().__init__(f"{tool}: {problem}")


class MissingExtraError(PipelineError):
    """A command needs an optional dependency group (a pip extra, sepipe.extras) that is not installed."""

    def __init__(self, command: str, extra: str, distribution: str):
        self.command, self.extra, self.distribution = command, extra, distribution
        super().__init__(f"'{command}' needs the '{extra}' extra ({distribution} is not installed): "
                         f"pip install 'sepipe[{extra}]'")


def last_line(text: str) -> str:
    """The last non-empty line of a tool's output (what a one-line error quotes)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output on stderr)"


def describe_exit(returncode: int) -> str:
    """'exit code N' or 'killed by signal SIGSEGV' for a finished subprocess."""
    import signal

    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"killed by signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"
