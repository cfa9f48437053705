"""Reading configuration YAML within limits, and building the frozen config dataclasses from it.

Configuration files and `--set` values come from users (and from other teams), so they are read as
hostile text: a bounded file size, UTF-8, YAML through PyYAML's safe loader with a bound on the
size of the document *after* aliases are expanded (a 1 KB alias bomb expands to 10**8 items), and
every failure is one `PipelineError` line naming the file or option. `sepipe.config` holds the
dataclasses and re-exports these helpers (`_build` is also used by the budget and target files).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from sepipe.errors import ConfigError, InputFileError, short_repr
from sepipe.registry import Tagged

MAX_YAML_BYTES = 1 << 20      # an experiment, budget or targets file is a few KB; 1 MiB leaves room
MAX_YAML_NODES = 100_000      # nodes of a document with its aliases expanded (the demo has ~60)
MAX_YAML_DEPTH = 64           # nesting of a document (the deepest real key is 4 levels down)


class YamlRefused(ValueError):
    """YAML text that does not parse or breaks a limit; the message is one line."""


def parse_yaml(text: str) -> Any:
    """`text` as Python values (safe loader: plain data only), or YamlRefused naming the problem."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)      # the reader checks the characters here already
        node = loader.get_single_node()
        if node is None:
            return None
        expanded = _expanded_size(node, {}, set(), 0)
        if expanded > MAX_YAML_NODES:
            raise YamlRefused(f"{expanded:,} values once its aliases are expanded; at most {MAX_YAML_NODES:,}")
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        where = f" (line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})" if exc.problem_mark else ""
        raise YamlRefused(f"{exc.problem or exc.context or type(exc).__name__}{where}") from None
    except yaml.YAMLError as exc:            # the reader's "special characters are not allowed", ...
        raise YamlRefused(_first_line(exc)) from None
    except RecursionError:                   # the composer recurses per nesting level
        raise YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels") from None
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, YamlRefused):
            raise
        # a scalar the safe constructor cannot make: an int of more than 4300 digits, a date like 2020-13-45
        raise YamlRefused(f"a value that cannot be read ({_first_line(exc)[:120]})") from None
    finally:
        if loader is not None:
            loader.dispose()


def _first_line(exc: BaseException) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], depth: int) -> int:
    """Values in `node` with every alias expanded, without expanding them (a shared node is counted once
    per use from its memoised size); a node that contains itself or nests too deep is refused."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise YamlRefused("an alias that refers to a value containing it (a recursive document)")
    if depth > MAX_YAML_DEPTH:
        raise YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels")
    open_nodes.add(key)
    children = node.value if isinstance(node, yaml.SequenceNode) else \
        [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_nodes, depth + 1)
        if total > MAX_YAML_NODES:          # stop early: the exact size of a bomb does not matter
            break
    open_nodes.discard(key)
    sizes[key] = total
    return total


def read_yaml_file(path: Path, what: str) -> Any:
    """The YAML document in `path` (`what`: 'experiment file'), or InputFileError naming the file."""
    if not path.exists():
        raise InputFileError(path, f"{what} not found")
    if path.is_dir():
        raise InputFileError(path, f"is a directory; expected a YAML {what}")
    if not path.is_file():                   # a FIFO or device would block or never end
        raise InputFileError(path, f"is not a regular file; expected a YAML {what}")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_YAML_BYTES:
        raise InputFileError(path, f"is over {MAX_YAML_BYTES:,} bytes; a YAML {what} is a few KB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                                   f"save the {what} as UTF-8") from None
    try:
        return parse_yaml(text)
    except YamlRefused as exc:
        raise InputFileError(path, f"not valid YAML ({exc})") from None


def parse_override_value(option: str, text: str) -> Any:
    """The value of `--set KEY=TEXT` (YAML, so `3`, `true`, `[1, 8]` have their types), or a ConfigError."""
    try:
        return parse_yaml(text)
    except YamlRefused as exc:
        raise ConfigError("--set", option, text, f"a YAML value ({exc})") from None


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Apply `--set a.b.c=value` to the loaded mapping; a path through a non-mapping is a ConfigError."""
    parts = dotted.split(".")
    if not all(part.strip() for part in parts):
        raise ConfigError("--set", dotted, value, "a dotted key of names, e.g. train.epochs=3")
    node, walked = raw, []
    for part in parts[:-1]:
        walked.append(part)
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError("--set", dotted, value, f"a key inside a section; {short_repr('.'.join(walked))} is a "
                                                      f"value, not a section of keys")
    node[parts[-1]] = value


_set_dotted = set_dotted   # the name of before


def _build(cls: type, raw: Any, source: str, prefix: str) -> Any:
    """Build dataclass `cls` from `raw`, checking every key and its type against the annotations."""
    if not isinstance(raw, dict):
        raise ConfigError(source, prefix.rstrip(".") or "<root>", raw, "a mapping")
    odd = [key for key in raw if not isinstance(key, str)]
    if odd:      # `1: x`, `~: x`, `2020-01-01: x`: a name is text
        raise ConfigError(source, prefix + short_repr(odd[0]), raw[odd[0]], "keys that are names (strings)")
    cls = _registered_class(cls, raw, source, prefix)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    raw = _without_unset_foreign_keys(cls, raw, names, source, prefix)
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(source, prefix + unknown[0], raw[unknown[0]],
                          f"one of the keys {sorted(names)}")
    kwargs = {}
    for key, value in raw.items():
        kwargs[key] = _coerce(hints[key], value, source, prefix + key)
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(source, prefix + missing[0], None, "a value (this key is required)")
    return cls(**kwargs)


def _registered_class(cls: type, raw: dict[str, Any], source: str, prefix: str) -> type:
    """For a `Tagged` config base, the registered config class its tag names; else `cls` itself."""
    if not (isinstance(cls, type) and issubclass(cls, Tagged)) or not cls.TAG:
        return cls
    default = next((f.default for f in dataclasses.fields(cls) if f.name == cls.TAG), dataclasses.MISSING)
    name = raw.get(cls.TAG, default)
    registry = cls.registry()
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(source, prefix + cls.TAG, name, registry.valid())
    return registry.config_class(name) or cls


def _without_unset_foreign_keys(cls: type, raw: dict[str, Any], names: set[str], source: str,
                                prefix: str) -> dict[str, Any]:
    """In a `Tagged` section, a key that belongs to other registered entries (`block` on a 'weight'
    variant) is dropped at their default value (unset: YAML written when one class held every entry's
    keys still loads) and is an error naming the entries that take it otherwise."""
    if not (isinstance(cls, type) and issubclass(cls, Tagged)) or not cls.TAG:
        return raw
    kept = dict(raw)
    for key in sorted(set(raw) - names):
        owners = [(entry.name, f) for entry in cls.registry() if entry.config is not None
                  for f in dataclasses.fields(entry.config) if f.name == key]
        if not owners:
            continue                       # not any entry's key: the unknown-key error follows
        value = raw[key]
        if any(_same(value, f.default) for _, f in owners):
            del kept[key]
            continue
        tag = next((entry.name for entry in cls.registry() if entry.config is cls), raw.get(cls.TAG))
        raise ConfigError(source, prefix + key, value,
                          f"no '{key}' for {cls.TAG} '{tag}': it is a setting of {cls.TAG} "
                          + " and ".join(repr(name) for name, _ in owners) + " only")
    return kept


def _same(value: Any, default: Any) -> bool:
    """`value` (a list where the default is a tuple) equals a field's default; never raises."""
    try:
        return bool((tuple(value) if isinstance(value, list) else value) == default)
    except Exception:   # noqa: BLE001  (a comparison of odd YAML values, e.g. a date with a number)
        return False


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key + ".")
    if origin is Literal:
        if not any(type(value) is type(arg) and value == arg for arg in args):
            raise ConfigError(source, key, value, "one of " + ", ".join(map(repr, args)))
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, source, key)
    if origin is tuple:
        return _coerce_tuple(args, value, source, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, value, "true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, value, "an integer")
        return value
    if hint is float:
        return _coerce_float(value, source, key)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, value, "a string")
        return value
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def _coerce_tuple(args: tuple, value: Any, source: str, key: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(source, key, value, f"a list of {_type_name(args[0])}")
    if args[-1] is not Ellipsis and len(value) != len(args):
        raise ConfigError(source, key, value, f"a list of {len(args)} numbers")
    return tuple(_coerce(args[0], item, source, _item_key(key, i, item)) for i, item in enumerate(value))


def _coerce_float(value: Any, source: str, key: str) -> float:
    """A finite number: NaN passes every `<`/`>` range check and infinity disables limits, so neither is a value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(source, key, value, "a number")
    try:
        number = float(value)
    except OverflowError:                   # an integer past the float range (10**400)
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(source, key, value, "a finite number (not .nan or .inf)")
    return number


def _item_key(key: str, index: int, item: Any) -> str:
    """`variants[w50]` for a mapping with a name, `variants[2]` for another mapping; `key` for a plain value."""
    if not isinstance(item, dict):
        return key
    name = item.get("name")
    return f"{key}[{name if isinstance(name, str) else index}]"


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


# Experiments of another task share experiments/ but not the enhancement config: {task: the command that runs
# it}. The key `task:` (default "enhancement") lets `sepipe run` name the right command instead of a bad key.
OTHER_TASKS = {"quality_predictor": "sepipe predictor run"}


def without_task(raw: Any, source: str) -> Any:
    """`raw` without its `task: enhancement`; ConfigError naming the command for another task's YAML."""
    if not isinstance(raw, dict) or "task" not in raw:
        return raw
    raw = dict(raw)
    task = raw.pop("task")
    if task != "enhancement":
        hint = (f"'enhancement' here; a {task} experiment runs with `{OTHER_TASKS[task]} {source}`"
                if task in OTHER_TASKS else f"one of {['enhancement', *OTHER_TASKS]}")
        raise ConfigError(source, "task", task, hint)
    return raw


def read_experiment_yaml(path: str | Path, overrides: dict[str, Any] | None = None) -> Any:
    """The raw mapping of an experiment YAML, `name` defaulting to the file's stem and `overrides` (dotted
    keys, `--set`) applied; anything but a mapping is returned as read, for the caller's one-line error."""
    path = Path(path)
    raw = read_yaml_file(path, "experiment file") or {}
    if isinstance(raw, dict):
        raw.setdefault("name", path.stem)
        for dotted, value in (overrides or {}).items():
            set_dotted(raw, dotted, value)
    return raw
