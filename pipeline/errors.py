"""The one error root of the pipeline.

Every error a user can cause names the file or option, the value given and what
would be valid. Only `sepipe.cli.main` catches these and turns them into one
line on stderr and a non-zero exit code.
"""

from __future__ import annotations

from pathlib import Path


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
        super().__init__(f"{source}: option '{key}' = {value!r} is not valid; expected {valid}")


def check(source: str | Path, key: str, value: object, ok: bool, valid: str) -> None:
    """Raise ConfigError(source, key, value, valid) unless `ok`: every config section validates with this."""
    if not ok:
        raise ConfigError(source, key, value, valid)


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
