"""Bring your own architecture: `model.family: "package.module:attr"` names a family in the user's code.

    model:
      family: tiny_crn:build      # def build(bins, frames=3, channels=32, gru_units=48) -> (sequence, streaming)
      gru_units: 32               # the builder's keyword parameters are the model's keys (defaults, types)

`attr` is either a builder function whose first parameter is `bins` and whose other parameters all have
defaults of type int, float, bool or str (they become the model's config keys, validated like any other:
unknown key, wrong type), returning the sequence and the one-frame Keras models built from the same
layers (`sepipe.models.builder.BuilderFamily` derives the contract and the layer groups from them); or a
`ModelFamily` subclass with its own `config_class`, for full control (unit pruning, custom groups).

The name is registered in `FAMILIES` the first time a config names it (`prepare_family`, called by
`sepipe.config.experiment_from_dict` and `model_config_from_dict`), so every stage and child process
that loads the config finds it. The module is imported from `sys.path`, to which the experiment file's
folder and the current folder are added (and to PYTHONPATH, for the pipeline's child processes), or
from an installed package; a config read from a run folder (`sepipe bundle runs/<exp>`) also adds the
folder the train stage imported it from (its recorded `model_source`). No TensorFlow at import here (the builder's module decides what it imports).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any

from sepipe.config import ModelConfig
from sepipe.errors import ConfigError, PipelineError

KEY = "model.family"
NAME_RULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
PARAM_TYPES = (bool, int, float, str)
WHAT = ("'package.module:function' (a builder `def build(bins, **params) -> (sequence, streaming)`) or "
        "'package.module:Class' (a ModelFamily subclass), importable from the experiment file's folder, the "
        "current folder or PYTHONPATH")


def is_builder_name(name: object) -> bool:
    """Whether a model.family value names user code ('module:attr') rather than a built-in family."""
    return isinstance(name, str) and ":" in name


def prepare_family(family: object, source: str = "<config>") -> None:
    """Register `family` when it names user code and is not registered yet; ConfigError (one line) when
    it cannot be imported, lacks the attribute, or is neither a builder nor a ModelFamily subclass."""
    from sepipe.models import FAMILIES

    if not is_builder_name(family) or family in FAMILIES:
        return
    if not NAME_RULE.match(family):
        raise ConfigError(source, KEY, family, WHAT)
    module_name, _, attr = family.partition(":")
    _extend_search_path(source, module_name)
    target = getattr(_import(module_name, family, source), attr, None)
    if target is None:
        raise ConfigError(source, KEY, family, f"a name defined in module '{module_name}' "
                                               f"({_file_of(sys.modules[module_name])}); it has no '{attr}'")
    family_object, config = _family_for(target, family, source)
    FAMILIES.add(family, family_object, config=config, help=f"user family {family}")


def _import(module_name: str, family: str, source: str):
    try:
        return importlib.import_module(module_name)
    except PipelineError:
        raise
    except BaseException as exc:   # noqa: BLE001  (the user's module may raise anything at import, SystemExit too)
        if isinstance(exc, KeyboardInterrupt):
            raise
        found = "not found" if isinstance(exc, ModuleNotFoundError) and exc.name == module_name.split(".")[0] \
            else f"its import raised {type(exc).__name__}: {_first_line(exc)}"
        raise ConfigError(source, KEY, family, f"{WHAT}; module '{module_name}': {found}") from None


def _family_for(target: Any, family: str, source: str):
    """(family object, config class) of a builder function or a ModelFamily subclass."""
    from sepipe.models.base import ModelFamily

    if isinstance(target, type) and issubclass(target, ModelFamily):
        config = target.config_class
        if not (isinstance(config, type) and issubclass(config, ModelConfig)):
            raise ConfigError(source, KEY, family, f"a ModelFamily whose config_class is a ModelConfig "
                                                   f"subclass; {target.__name__}.config_class is {config!r}")
        instance = target()
        instance.name = family
        instance.source_file = _file_of(inspect.getmodule(target))
        return instance, config
    if not inspect.isfunction(target):
        raise ConfigError(source, KEY, family, f"{WHAT}; it names a {type(target).__name__}")
    from sepipe.models.builder import BuilderFamily

    config = config_from_signature(target, family, source)
    return BuilderFamily(family, target, _file_of(inspect.getmodule(target))), config


def config_from_signature(builder, family: str, source: str) -> type:
    """A frozen ModelConfig subclass whose fields are the builder's keyword parameters (their defaults
    and types), so the YAML's model keys are checked like any built-in family's."""
    params = list(inspect.signature(builder).parameters.values())
    if not params or params[0].name != "bins" or params[0].kind not in (params[0].POSITIONAL_ONLY,
                                                                          params[0].POSITIONAL_OR_KEYWORD):
        raise ConfigError(source, KEY, family, "a builder whose first parameter is `bins` "
                                               "(def build(bins, **params) -> (sequence, streaming))")
    try:
        hints = typing.get_type_hints(builder)
    except Exception:   # noqa: BLE001  (an annotation that does not resolve: the default's type decides)
        hints = {}
    fields = []
    for param in params[1:]:
        kind = hints.get(param.name, type(param.default))
        if (param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.default is param.empty
                or param.name in ("family",) or kind not in PARAM_TYPES or not isinstance(param.default, kind)):
            raise ConfigError(source, KEY, family, f"a builder whose parameters after `bins` are keywords with "
                                                   f"defaults of type int, float, bool or str (not 'family'); "
                                                   f"parameter {param} is not")
        fields.append((param.name, kind, dataclasses.field(default=param.default)))
    name = "Config_" + re.sub(r"\W", "_", family)
    return dataclasses.make_dataclass(name, fields, bases=(BuilderConfig,), frozen=True,
                                      namespace={"__module__": __name__})


@dataclasses.dataclass(frozen=True)
class BuilderConfig(ModelConfig):
    """Base of the config classes made from builder signatures: pickled by value (a worker re-registers)."""

    @property
    def params(self) -> dict[str, Any]:
        """The builder's keyword arguments."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "family"}

    def __reduce__(self):
        return _rebuild, (dataclasses.asdict(self),)


def _rebuild(data: dict) -> ModelConfig:
    from sepipe.models import model_config_from_dict

    return model_config_from_dict(data)


def _extend_search_path(source: str, module_name: str) -> None:
    """Put the experiment file's folder and the current folder on sys.path (after what is there, so they
    shadow nothing installed) and on PYTHONPATH, which the converter's subprocess inherits. A config read
    from a run folder's manifest.json adds the folder the train stage imported the module from."""
    folders = [Path.cwd()]
    if Path(source).suffix in (".yaml", ".yml"):
        folders.insert(0, Path(source).resolve().parent)
    elif Path(source).name == "manifest.json":
        folders[:0] = _recorded_import_root(Path(source).parent, module_name)
    known = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    for folder in map(str, folders):
        if folder not in sys.path:
            sys.path.append(folder)
        if folder not in known:
            known.append(folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in known if p)


def _recorded_import_root(run_dir: Path, module_name: str) -> list[Path]:
    """The sys.path entry the train stage imported `module_name` from: its recorded source file
    (input 'model_source') up one folder per dotted part ([] when the record has none)."""
    from sepipe.engine import records

    try:
        recorded = json.loads(records.record_path(run_dir, "train").read_text())["input_files"]["model_source"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    path = Path(run_dir) / str(recorded)          # absolute paths stay absolute
    parts = module_name.count(".") + (2 if path.name == "__init__.py" else 1)
    return [path.parents[parts - 1]] if len(path.parents) >= parts else []


def _file_of(module) -> Path | None:
    path = getattr(module, "__file__", None)
    return Path(path).resolve() if path else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "(no message)"
