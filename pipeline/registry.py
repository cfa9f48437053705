"""Registries: where the things that vary are declared, one class and one registration each.

A YAML tag (`model.family: gru`, `variants[].kind: block`, `convert.scheme: int16x8`,
`--executor ray`) names a registered entry; the entry brings its own config dataclass, which
`sepipe.config` builds and validates from the rest of that YAML mapping. Adding a model
family, a compressor, a quantization scheme, a runner or an executor is one new module that
calls `REGISTRY.register(...)`, plus its import in the package that owns the registry.

    from sepipe.registry import Registry

    FAMILIES = Registry("model family", key="model.family")

    @FAMILIES.register("gru", config=GruConfig)
    class GruFamily(MaskRnnFamily): ...

    FAMILIES.get("gru")            # the class (or object) registered under "gru"
    FAMILIES.config_class("gru")   # GruConfig
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from sepipe.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registration: the name users write, the thing it selects, and its config dataclass."""

    name: str
    target: T
    config: type | None
    help: str


class Registry(Generic[T]):
    """Name -> entry, in registration order; unknown names are a ConfigError listing the valid ones."""

    def __init__(self, what: str, key: str, open_form: str = ""):
        self.what = what        # "model family": how errors and --help name an entry
        self.key = key          # "model.family": the YAML key or option that selects an entry
        self.open_form = open_form  # what else a name may be, registered on first use ("'package.module:function'")
        self._entries: dict[str, Entry[T]] = {}

    def valid(self) -> str:
        """What an error says is valid: the registered names, and the open form where there is one."""
        names = "one of " + ", ".join(map(repr, self.names()))
        return f"{names}, or {self.open_form}" if self.open_form else names

    def register(self, name: str, config: type | None = None, help: str = "") -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name", config=NameConfig)` over a class or function."""
        def decorate(target: T) -> T:
            self.add(name, target, config=config, help=help or (getattr(target, "__doc__", "") or "").strip())
            return target
        return decorate

    def add(self, name: str, target: T, config: type | None = None, help: str = "") -> None:
        if name in self._entries and self._entries[name].target is not target:
            raise ValueError(f"{self.what} '{name}' is registered twice "
                             f"({self._entries[name].target!r} and {target!r})")
        self._entries[name] = Entry(name, target, config, help.splitlines()[0] if help else "")

    def entry(self, name: str, source: str = "<config>") -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(source, self.key, name, self.valid()) from None

    def get(self, name: str, source: str = "<config>") -> T:
        """The registered target; a "package.module:attr" string target is imported on first use,
        so a registry can list TensorFlow-backed entries without importing TensorFlow."""
        entry = self.entry(name, source)
        if isinstance(entry.target, str) and ":" in entry.target:
            module, _, attr = entry.target.partition(":")
            target = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry = Entry(name, target, entry.config, entry.help)
        return entry.target

    def config_class(self, name: str, source: str = "<config>") -> type | None:
        return self.entry(name, source).config

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def describe(self) -> str:
        """One line per entry, for --help texts and docs."""
        return "\n".join(f"  {e.name:<12} {e.help}" for e in self)


class Tagged:
    """Mixin for a config dataclass whose YAML mapping picks a registered subclass by a tag key.

    `sepipe.config` reads the tag (e.g. `family`) from the mapping, asks `registry()` for that
    name's config class and builds that class from the whole mapping, so each registered entry
    validates its own keys. Subclasses set `TAG` and implement `registry()`.
    """

    TAG: str = ""

    @classmethod
    def registry(cls) -> Registry[Any]:
        raise NotImplementedError
