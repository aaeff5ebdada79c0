"""Scene definitions: a scene is data (``scenes/<name>.toml``) plus one builder.

A scene file declares the scene's *parameters* (each with a range, a unit and
a sentence saying what it changes in the world) and a *ladder* of at least
:data:`MIN_LEVELS` levels, each a full point in that parameter space. The
director climbs the ladder; the world applies one level's values live.

Schema (see ``docs/world.md``)::

    name = "park"                  # must match the file stem
    title = "Park path"
    description = "..."
    builder = "park"               # key into vrbalance.world.scene.SCENE_BUILDERS
    seed = 7                       # layout seed (trees, benches ...)

    [parameters.optic_flow_mps]
    min = 0.0
    max = 1.5
    unit = "m/s"
    integer = false                # optional; true for counts
    description = "speed at which the path flows towards the patient"

    [[levels]]                     # level 1 (levels count from 1)
    label = "standing still, noon" # optional
    optic_flow_mps = 0.0
    ...                            # every declared parameter, no others

Every error names the file, the table (``[levels.3]``) and the field.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from vrbalance.config.check import Fields, load_toml
from vrbalance.errors import ConfigError
from vrbalance.resources import data_dir

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: The issue asks for a ladder fine enough that one step is a small change.
MIN_LEVELS = 10
#: ... and for enough parameters that difficulty is more than one knob.
MIN_PARAMETERS = 6
_NAME_RE = re.compile(r"\A[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class ParameterDef:
    """One scene parameter: its allowed range and meaning.

    Attributes
    ----------
    name : str
        Identifier with its unit as suffix where it has one (``optic_flow_mps``).
    min_value, max_value : float
        Inclusive range every level must respect.
    unit : str
        Human unit for displays (``"m/s"``, ``"deg"``, ``"1"`` for flags/fractions).
    description : str
        What visibly changes in the world.
    integer : bool
        True for counts and flags (levels must give integers).
    """

    name: str
    min_value: float
    max_value: float
    unit: str
    description: str
    integer: bool = False


@dataclass(frozen=True, slots=True)
class LevelDef:
    """One rung of the ladder: a value for every parameter.

    Attributes
    ----------
    number : int
        1-based level number.
    label : str
        Optional short description (``""`` when not given).
    values : Mapping[str, float]
        Read-only parameter values, in the declared units.
    """

    number: int
    label: str
    values: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class SceneDef:
    """A validated scene definition.

    Attributes
    ----------
    name : str
        Scene name (the file stem), as on the command line.
    path : pathlib.Path
        The file it came from.
    title, description : str
        For the operator.
    builder : str
        Key of the scene builder class in ``SCENE_BUILDERS``.
    seed : int
        Seed of the scene's layout generator.
    parameters : Mapping[str, ParameterDef]
        Declared parameters in file order (read-only).
    levels : tuple of LevelDef
        The ladder, easiest first.
    """

    name: str
    path: Path
    title: str
    description: str
    builder: str
    seed: int
    parameters: Mapping[str, ParameterDef]
    levels: tuple[LevelDef, ...]

    @property
    def n_levels(self) -> int:
        """Number of levels on the ladder (the highest level number)."""
        return len(self.levels)

    def level(self, number: int) -> LevelDef:
        """Return level ``number`` (1-based).

        Raises
        ------
        ConfigError
            If ``number`` is not an integer in ``[1, n_levels]``.
        """
        if isinstance(number, bool) or not isinstance(number, int):
            raise ConfigError(f"scene {self.name!r}: level must be an integer, got {number!r}")
        if not 1 <= number <= self.n_levels:
            raise ConfigError(
                f"scene {self.name!r}: level must be in [1, {self.n_levels}], got {number}"
            )
        return self.levels[number - 1]

    def check_values(self, values: Mapping[str, float], where: str = "") -> dict[str, float]:
        """Validate a (possibly partial) parameter mapping against the declared ranges.

        Used for live overrides (the director may interpolate between levels).
        Returns a plain dict of floats; raises :class:`ConfigError` naming the field.
        """
        where = where or f"scene {self.name!r}"
        # At run time values are floats (a level's 3 arrives as 3.0): whole floats
        # are accepted for integer parameters, 2.5 is still rejected.
        table = {
            k: int(v)
            if k in self.parameters
            and self.parameters[k].integer
            and isinstance(v, float)
            and v.is_integer()
            else v
            for k, v in values.items()
        }
        fields = Fields(table, where)
        out: dict[str, float] = {}
        for name in fields.keys():  # noqa: SIM118 - Fields is not a dict
            if name in self.parameters:
                out[name] = _read_value(fields, self.parameters[name])
        fields.finish()
        return out


def available_scenes() -> list[str]:
    """Names of the shipped scenes (``scenes/*.toml`` stems), sorted."""
    return sorted(p.stem for p in data_dir("scenes").glob("*.toml"))


def scene_path(name_or_path: str | Path) -> Path:
    """Resolve a scene name (``"park"``) or a path to a ``.toml`` file.

    Raises
    ------
    ConfigError
        If a bare name is not one of the shipped scenes (lists the choices).
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text:
        return Path(name_or_path)
    candidate = data_dir("scenes") / f"{text}.toml"
    if not candidate.is_file():
        choices = ", ".join(available_scenes()) or "(none)"
        raise ConfigError(f"unknown scene {text!r}; available scenes: {choices}")
    return candidate


def _read_value(fields: Fields, param: ParameterDef) -> float:
    if param.integer:
        return float(
            fields.integer(
                param.name, min_value=int(param.min_value), max_value=int(param.max_value)
            )
        )
    return fields.number(param.name, min_value=param.min_value, max_value=param.max_value)


def _read_parameter(name: str, fields: Fields) -> ParameterDef:
    if not _NAME_RE.match(name):
        raise ConfigError(f"{fields.where}: parameter name must match {_NAME_RE.pattern}")
    integer = fields.boolean("integer", default=False)
    lo = fields.number("min")
    hi = fields.number("max")
    if hi < lo:
        raise ConfigError(f"{fields.where} max: expected max >= min ({lo:g}), got {hi:g}")
    if integer and (lo != int(lo) or hi != int(hi)):
        raise ConfigError(f"{fields.where}: integer parameter needs integer min/max")
    unit = fields.string("unit")
    description = fields.string("description")
    fields.finish()
    return ParameterDef(name, lo, hi, unit, description, integer)


def load_scene(name_or_path: str | Path) -> SceneDef:
    """Load and validate a scene definition.

    Parameters
    ----------
    name_or_path : str or pathlib.Path
        A shipped scene name (``"park"``, ``"stairs"``, ``"crowd"``) or the
        path of a scene TOML file.

    Returns
    -------
    SceneDef

    Raises
    ------
    ConfigError
        Malformed TOML, unknown or missing fields, out-of-range level values,
        too few levels or parameters; the message names file, level and field.
    FileNotFoundError
        If a given path does not exist.
    """
    path = scene_path(name_or_path)
    root = Fields(load_toml(path), str(path))
    name = root.string("name")
    if name != path.stem:
        raise ConfigError(f"{path} name: expected the file stem {path.stem!r}, got {name!r}")
    title = root.string("title")
    description = root.string("description", default="")
    builder = root.string("builder", default=name)
    seed = root.integer("seed", default=0, min_value=0)

    ptable = root.table("parameters")
    params: dict[str, ParameterDef] = {}
    for pname in ptable.keys():  # noqa: SIM118 - Fields is not a dict
        params[pname] = _read_parameter(pname, ptable.table(pname))
    ptable.finish()
    if len(params) < MIN_PARAMETERS:
        raise ConfigError(
            f"{path} [parameters]: expected at least {MIN_PARAMETERS} parameters, got {len(params)}"
        )

    levels: list[LevelDef] = []
    for number, lf in enumerate(root.tables("levels"), start=1):
        label = lf.string("label", default="")
        values = {p.name: _read_value(lf, p) for p in params.values()}
        lf.finish()
        levels.append(LevelDef(number, label, MappingProxyType(values)))
    if len(levels) < MIN_LEVELS:
        raise ConfigError(
            f"{path} levels: expected at least {MIN_LEVELS} levels, got {len(levels)}"
        )
    root.finish()
    log.debug("loaded scene %s: %d parameters, %d levels", name, len(params), len(levels))
    return SceneDef(
        name=name,
        path=path,
        title=title,
        description=description,
        builder=builder,
        seed=seed,
        parameters=MappingProxyType(params),
        levels=tuple(levels),
    )
