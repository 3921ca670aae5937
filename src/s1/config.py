"""Config files for every stage: YAML sections read into validated dataclasses.

A stage config is a few sections, each one dataclass (`train:` → TrainConfig, `engine:` →
EngineOptions). A file names some fields; `section.field=value` overrides (the value read as
YAML) change any field; every value is checked against the field's type, an unknown section or
field is an error naming the known ones, and each section validates itself (`__post_init__`,
or `validate()` where the caller asks). Named files live in `configs/`; `--show` prints the
resolved config (`dump`).

    raw = read_config("configs/eval-smoke.yaml", kind="config")
    apply_overrides(raw, ["method.max_thinking=8,16"], sections=SECTIONS)
    parts = build_sections(raw, SECTIONS)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from s1.errors import UserError


def default(cls, name: str) -> Any:
    """The default of a dataclass field, so a CLI shows the default the code uses."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{cls.__name__} has no field {name!r} with a default")


# --- finding and reading files ----------------------------------------------------------------

def config_dirs() -> list[Path]:
    """Where named configs live: ./configs, then the configs/ of this source checkout."""
    dirs = [Path.cwd() / "configs", Path(__file__).resolve().parents[2] / "configs"]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def list_configs(folder: str = "") -> list[str]:
    """Named configs of a stage: configs/FOLDER/*.yaml (training recipes: configs/*.yaml)."""
    return sorted({p.stem for d in config_dirs() for p in (d / folder).glob("*.yaml")})


def config_path(name: str, kind: str = "config", folder: str = "") -> Path:
    """A .yaml path as given, or configs/FOLDER/NAME.yaml."""
    p = Path(name).expanduser()
    if name.endswith((".yaml", ".yml")):
        if not p.is_file():
            raise UserError(f"{kind} file not found: {name}")
        return p
    for d in config_dirs():
        if (d / folder / f"{name}.yaml").is_file():
            return d / folder / f"{name}.yaml"
    known = ", ".join(list_configs(folder)) or "none found; run from the s1 checkout"
    raise UserError(f"unknown {kind} {name!r} (known: {known}); or give a path to a .yaml file")


def read_config(name: str, kind: str = "config", folder: str = "") -> dict:
    """The file's mapping, each section copied (so overrides never touch a shared object)."""
    path = config_path(name, kind, folder)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{kind} {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{kind} {path} must be a mapping")
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}


# --- overrides ------------------------------------------------------------------------------

def parse_override(text: str, example: str = "train.max_steps=10") -> tuple[list[str], object]:
    if "=" not in text:
        raise UserError(f"override {text!r} must look like section.field=value (e.g. {example})")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(raw: dict, overrides, sections: dict[str, type], top_level=(),
                    example: str = "train.max_steps=10") -> dict:
    """Set `section.field=value` (or a top-level `key=value`) in the raw mapping, in order."""
    for text in overrides:
        keys, value = parse_override(text, example)
        if len(keys) == 1 and keys[0] in top_level:
            raw[keys[0]] = value
        elif len(keys) >= 2 and keys[0] in sections:
            # section.field=value; section.field.key=value sets a key of a mapping field
            # (model.scratch.hidden_size=64), which the field's dataclass validates
            node = raw
            for key in keys[:-1]:
                child = node.get(key)
                node[key] = child = dict(child) if isinstance(child, dict) else {}
                node = child
            node[keys[-1]] = value
        else:
            allowed = [*top_level, *(f"{s}.FIELD" for s in sections)]
            raise UserError(f"unknown override key {'.'.join(keys)!r}: use {', '.join(allowed)}")
    return raw


# --- typed sections -------------------------------------------------------------------------

def coerce(value, hint, key: str):
    """Check a YAML value against a dataclass field's type; ints are accepted for floats, a list
    for a comma-separated string, a single value for a list."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise UserError(f"{key} cannot be null")
    for t in options:
        if typing.get_origin(t) is list:
            (item,) = typing.get_args(t) or (str,)
            if isinstance(value, str):     # a comma-separated list on the command line
                value = [v.strip() for v in value.split(",") if v.strip()]
            values = value if isinstance(value, (list, tuple)) else [value]
            if item is str and not all(isinstance(v, str) and v for v in values):
                raise UserError(f"{key} must be a list of names, not {value!r}")
            return [coerce(v, item, key) for v in values]
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is float and isinstance(value, str):
            try:  # YAML 1.1 reads `3e-4` (no dot) as a string
                return float(value)
            except ValueError:
                pass
        if t is bool and isinstance(value, bool):
            return value
        if t is dict and isinstance(value, dict):   # a nested mapping its dataclass validates
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if t is str and isinstance(value, list) and value:
            return ",".join(str(v) for v in value)
    names = " or ".join(getattr(t, "__name__", str(t)).replace("NoneType", "null") for t in options)
    raise UserError(f"{key} must be {names}, not {value!r}")


def build_section(cls, values, key: str):
    """One section's dataclass from its mapping (its own `__post_init__` validates it)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"{key} must be a mapping of fields")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    out = {}
    for k, v in values.items():
        if k not in names:
            raise UserError(f"unknown field {key}.{k} (fields: {', '.join(names)})")
        out[k] = coerce(v, hints[k], f"{key}.{k}")
    return cls(**out)


def build_sections(raw: dict, sections: dict[str, type], top_level=(), where: str = "config") -> dict:
    """{section: dataclass} for every section (missing ones at their defaults)."""
    unknown = set(raw) - set(sections) - set(top_level)
    if unknown:
        raise UserError(f"{where} has unknown top-level keys: {', '.join(sorted(unknown))}")
    return {name: build_section(cls, raw.get(name), name) for name, cls in sections.items()}


def dump(config) -> str:
    """The YAML `--show` prints: a dataclass (or a dict of them), fields in declaration order."""
    def plain(x):
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x
    return yaml.safe_dump(plain(config), sort_keys=False)
