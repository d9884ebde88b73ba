"""Config files: strict reading, schema validation with short messages, and the
cross-reference checks that the JSON schema cannot express.

:func:`read_config_file` reads a YAML or JSON file, naming the file and line of a syntax error
or of a key given twice (Snakemake's loader names neither, and keeps the last duplicate).
:func:`validate_config` checks keys, types and ranges against the schema
(``workflow/schemas/config.schema.yaml``) and fills defaults, as ``snakemake.utils.validate``
does, but says in a few lines which key is wrong and what is allowed; :func:`check_config` then
checks that every name refers to something that exists and is safe in a path.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

import jsonschema
import yaml

from metamers.inits import DECODER_KEYS, INIT_KINDS, LEARNED_KINDS, decoder_settings
from metamers.zoo import registry as zoo_registry

# Data sets of a few labelled test images (data.load_dataset): no training split for a null.
TEST_ONLY_DATA = ("foolbox_imagenet", "foolbox_mnist", "imagenet_samples")
# Names become folder and file names of outputs: no separators, no leading dot, no "..".
SAFE_NAME = re.compile(r"^(?!\.)(?!.*\.\.)[A-Za-z0-9_.\-]+$")
MAX_LISTED_PROBLEMS = 5
# The config's schema, in the repository that holds this source tree (src/metamers/).
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config that cannot be used; the message says what is wrong, where, and the fix."""


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_lines: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class refuses it
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise ConfigError(f"{key_node.start_mark.name}, line {line}: key {key!r} is "
                                  f"given twice in one mapping (first at line "
                                  f"{first_lines[key]}); YAML would silently keep the last. "
                                  "Remove one of them.")
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicate_pairs(path: Path):
    def build(pairs: list[tuple[str, object]]) -> dict:
        keys = [key for key, _ in pairs]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:
            raise ConfigError(f"{path}: key(s) {twice} given twice in one object; JSON readers "
                              "would silently keep the last. Remove one of them.")
        return dict(pairs)

    return build


def read_config_file(path: str | Path) -> dict:
    """The mapping in a YAML or JSON config file; a syntax error or a key given twice is a
    :class:`ConfigError` naming the file and the line."""
    path = Path(path)
    with open(path, encoding="utf-8") as stream:
        try:
            if path.suffix == ".json":
                content = json.load(stream, object_pairs_hook=_refuse_duplicate_pairs(path))
            else:
                content = yaml.load(stream, Loader=_StrictLoader)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}, line {error.lineno}, column {error.colno}: not valid "
                              f"JSON ({error.msg}). Fix the file there.") from None
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: not valid YAML ({error.problem or error.context})"
                              ". Fix the file there: indent with spaces, quote values holding "
                              "': ' or '#'.") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path} holds a {type(content).__name__}, not a mapping of "
                          "sections (data:, models:, ...).")
    return content


def check_config_files(paths: Iterable[str | Path]) -> None:
    """:func:`read_config_file` of each existing path: config files that Snakemake reads (and
    names when missing), without saying where a syntax error is, or refusing duplicated keys."""
    for path in paths:
        if Path(path).exists():
            read_config_file(path)


def _with_defaults(validator_class: type) -> type:
    """The validator, filling each absent property's ``default`` before checking it
    (``snakemake.utils.validate``'s extension, from the jsonschema FAQ)."""
    check_properties = validator_class.VALIDATORS["properties"]

    def fill_then_check(validator, properties, instance, schema):
        for name, subschema in properties.items():
            if "default" in subschema:
                instance.setdefault(name, subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": fill_then_check})


def _shorten(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _problem(error: jsonschema.ValidationError) -> str:
    """One line: the key path, what is wrong, what is allowed."""
    where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"{where}: unknown key(s) {unknown}; allowed: {', '.join(allowed)}"
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return f"{where}: missing required key(s) {missing}"
    if error.validator == "enum":
        return (f"{where}: {_shorten(error.instance)} is not allowed; choose one of "
                f"{', '.join(map(repr, error.validator_value))}")
    if error.validator == "type":
        return f"{where}: {_shorten(error.instance)} is not of type {error.validator_value}"
    return f"{where}: {_shorten(error.message, 200)}"


def validate_config(config: dict, schema_path: str | Path,
                    sources: Iterable[str | Path] = ()) -> None:
    """Check ``config`` against the JSON schema at ``schema_path`` and fill in its defaults in
    place, as ``snakemake.utils.validate`` does. Problems are a short :class:`ConfigError`:
    one line each (key path, problem, allowed values), naming the config files ``sources``."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    # A model's source is a key of the registry: the schema leaves that list to it.
    source = schema["properties"]["models"]["additionalProperties"]["properties"]["source"]
    source["enum"] = list(zoo_registry.MODEL_SOURCES)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    problems = sorted(_problem(error) for error in validator.iter_errors(config))
    if problems:
        files = ", ".join(map(str, sources)) or "the config"
        listed = problems[:MAX_LISTED_PROBLEMS]
        if len(problems) > len(listed):
            listed.append(f"... and {len(problems) - len(listed)} more")
        raise ConfigError(f"{files} does not fit the schema {schema_path}:\n  "
                          + "\n  ".join(listed) + "\nFix these keys in the config file.")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def generator_members(generator_sets: Mapping, generator: str) -> list[str]:
    """The models of a generator: a set's members, or the model itself."""
    return list(generator_sets[generator]["members"]) if generator in generator_sets else [generator]


def member_layers(generator_sets: Mapping, generator: str, layer: str) -> dict[str, str]:
    """``{member: generating layer}`` of a generator at ``layer`` (a set's alias)."""
    if generator in generator_sets:
        return dict(generator_sets[generator]["layers"][layer])
    return {generator: layer}


def path_names(config: dict) -> list[tuple[str, str]]:
    """(key path, value) of every config value that becomes part of an output path, a log
    path or an HDF5 group name: model, set, alias, layer, optimizer, init and data names."""
    names = [("data.name", config["data"]["name"])]
    for section in ("models", "generator_sets", "optimizers", "inits"):
        names += [(section, name) for name in config.get(section) or {}]
    for model, spec in config["models"].items():
        names += [(f"models.{model}.layers", layer) for layer in spec.get("layers", [])]
    for name, spec in (config.get("generator_sets") or {}).items():
        names += [(f"generator_sets.{name}.members", member) for member in spec["members"]]
        for alias, layers in spec["layers"].items():
            names.append((f"generator_sets.{name}.layers", alias))
            names += [(f"generator_sets.{name}.layers.{alias}.{member}", layer)
                      for member, layer in layers.items()]
    generation = config["generation"]
    for generator, layers in generation["generators"].items():
        names.append(("generation.generators", generator))
        names += [(f"generation.generators.{generator}", layer) for layer in layers]
    for key in ("optimizers", "inits"):
        names += [(f"generation.{key}", name) for name in generation[key]]
    for group in ("pool", "compare"):
        for model, layers in ((config.get("joint") or {}).get(group) or {}).items():
            names += [(f"joint.{group}.{model}", depth) for depth in layers]
            names += [(f"joint.{group}.{model}.{depth}", layer)
                      for depth, layer in layers.items()]
    return names


def _require_safe_names(config: dict) -> None:
    for where, name in path_names(config):
        _require(isinstance(name, str) and bool(SAFE_NAME.match(name)),
                 f"{where}: {name!r} is used in output paths; use letters, digits, '_', '-' "
                 "and '.' (no '/', no '..', not starting with '.').")


def _writes_inside_resources(data: dict) -> None:
    """The pipeline writes into ``data.root`` (Fashion-MNIST unpacked there, or a download):
    then it must stay inside resources/."""
    writes = data["name"] == "fashion_mnist" or data["download"]
    root = PurePosixPath(data["root"])
    inside = not root.is_absolute() and root.parts[:1] == ("resources",) and ".." not in root.parts
    _require(not writes or inside,
             f"data.root={str(root)!r}: the pipeline writes its data files there, so it must be "
             "a folder inside resources/ (e.g. resources/data).")


def _check_models(models: dict, sets: dict, training: dict) -> None:
    """Model names differ from set names; each spec suits its source (the zoo's registry)."""
    for name, spec in models.items():
        _require(name not in sets,
                 f"models.{name}: model names must differ from generator set names.")
        problem = zoo_registry.spec_problem(name, spec, training)
        _require(problem is None, problem)


def _check_generator_sets(sets: dict, models: dict) -> None:
    """Members are models; each layer alias gives one layer per member."""
    for name, spec in sets.items():
        for member in spec["members"]:
            _require(member in models, f"generator_sets.{name}: member {member!r} is not a "
                                       f"model (models: {sorted(models)}).")
        for alias, layers in spec["layers"].items():
            _require(sorted(layers) == sorted(spec["members"]),
                     f"generator_sets.{name}.layers.{alias} must give one layer per member "
                     f"{spec['members']}, not {sorted(layers)}.")


def _check_generation(config: dict, models: dict, sets: dict) -> None:
    """Generators are models or sets (with their aliases); optimizers and inits are defined."""
    generation = config["generation"]
    for generator, layers in generation["generators"].items():
        _require(generator in models or generator in sets,
                 f"generation.generators: {generator!r} is neither a model nor a generator set.")
        if generator in sets:
            unknown = [layer for layer in layers if layer not in sets[generator]["layers"]]
            _require(not unknown, f"generation.generators.{generator}: layer aliases {unknown} "
                                  f"are not in generator_sets.{generator}.layers.")
    for key, kind in (("optimizers", "optimizer"), ("inits", "init")):
        for name in generation[key]:
            _require(name in config[key], f"generation.{key}: {kind} {name!r} is not defined "
                                          f"under `{key}` ({sorted(config[key])}).")


def _check_inits(config: dict) -> None:
    """Inits are of known kinds (optimisers: :func:`metamers.preflight.check_optimizers`,
    which imports torch)."""
    for name, init in config["inits"].items():
        _require(init["kind"] in INIT_KINDS, f"inits.{name}.kind must be one of {INIT_KINDS}.")
        if init["kind"] in LEARNED_KINDS:
            _require(config["data"]["name"] not in TEST_ONLY_DATA,
                     f"inits.{name}: a decoder start is trained on the training split, and data "
                     f"set {config['data']['name']!r} has none; choose another init kind.")
            try:
                decoder_settings(init)
            except ValueError as error:
                raise ConfigError(f"inits.{name}: {error}") from None
        else:
            misplaced = sorted(set(init) & set(DECODER_KEYS))
            _require(not misplaced, f"inits.{name}: {misplaced} set(s) a decoder's training; "
                     f"kind {init['kind']!r} has no decoder. Remove them, or use kind: decoder.")


def _check_null_source(config: dict) -> None:
    """A null of training pairs needs a data set with a training split."""
    null_source = config.get("criterion", {}).get("null_distribution", {}).get("source")
    _require(null_source != "train" or config["data"]["name"] not in TEST_ONLY_DATA,
             f"criterion.null_distribution.source=train: data set {config['data']['name']!r} "
             "has no training split; set criterion.null_distribution.source: references (the "
             "weaker null of pairs of references, docs/criterion.md).")


def deepest_layers(evaluator_layers: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Each evaluator's deepest configured layer: the last one listed, since the config lists
    an evaluator's layers from early to late."""
    return {evaluator: list(layers)[-1] for evaluator, layers in evaluator_layers.items()}


def check_config(config: dict) -> None:
    """Raise :class:`ConfigError` naming the first dangling reference in ``config``."""
    models, sets = config["models"], config.get("generator_sets", {})
    _writes_inside_resources(config["data"])
    _require_safe_names(config)
    _check_models(models, sets, config.get("training", {}))
    _check_generator_sets(sets, models)
    _check_generation(config, models, sets)
    _check_inits(config)
    _check_null_source(config)
    for name in config.get("evaluation", {}).get("evaluators") or []:
        _require(name in models, f"evaluation.evaluators: {name!r} is not a model.")


def main(paths: list[str] | None = None) -> int:
    """``python -m metamers.config FILE...``: read each config file strictly, printing where a
    syntax error or a duplicated key is (Snakemake's ``--configfile`` names neither)."""
    failed = False
    for path in sys.argv[1:] if paths is None else paths:
        try:
            read_config_file(path)
        except (ConfigError, OSError) as error:
            print(error, file=sys.stderr)
            failed = True
        else:
            print(f"{path}: readable, no duplicated keys")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
