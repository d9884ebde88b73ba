# Config validation, lookups, input functions and wildcard constraints.
import functools
import itertools
import re

from metamers import joint, layout, preflight
from metamers.inits import LEARNED_KINDS, decoder_settings
from metamers.config import (
    check_config,
    check_config_files,
    deepest_layers,
    generator_members,
    validate_config,
)
from metamers.config import member_layers as config_member_layers
from metamers.zoo import registry as zoo_registry


def canonical(value):
    """Config slices with keys sorted at every depth: reordering keys in a config file is not
    a change, so it must not make Snakemake rerun jobs whose params hold the slice."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


# Config files read strictly (file and line of a duplicated key), then the schema (defaults
# filled in, a few lines per problem) and the cross-references.
check_config_files(workflow.configfiles)
validate_config(
    config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml", workflow.configfiles
)
check_config(config)
for section in list(config):
    config[section] = canonical(config[section])

MODELS = config["models"]
LOCAL_MODELS = [name for name, spec in MODELS.items() if zoo_registry.trained_by_pipeline(spec)]
EXTERNAL_MODELS = [name for name in MODELS if name not in LOCAL_MODELS]
JOINT = joint.design(config)  # jointly optimised sets (config["joint"]), drawn at load
GENERATOR_SETS = {**config["generator_sets"], **joint.generator_sets(config)}
GENERATION = config["generation"]
DATASET = config["data"]["name"]
REFERENCES = layout.REFERENCES.format(dataset=DATASET)
CONDITIONS = [
    dict(generator=generator, layer=layer, optimizer=optimizer, init=init)
    for generator, layers in GENERATION["generators"].items()
    for layer, optimizer, init in itertools.product(
        layers, GENERATION["optimizers"], GENERATION["inits"]
    )
]
# Learned inits (a decoder per model and layer) make starts for their generator and layer;
# the others' starts depend only on the references.
LEARNED_INITS = [
    name for name in GENERATION["inits"] if config["inits"][name]["kind"] in LEARNED_KINDS
]
SHARED_INITS = [name for name in GENERATION["inits"] if name not in LEARNED_INITS]
# A shared init's starting images, evaluated once for all its conditions (rule evaluate_starts).
START_FILES = {
    "activations": "results/starts/{init}/activations.h5",
    "scores": "results/starts/{init}/scores.parquet",
    "summary": "results/starts/{init}/summary.parquet",
}
NEVER = "(?!x)x"


def alternation(names):
    """A wildcard regex matching exactly these names (none: matches nothing)."""
    return "|".join(re.escape(name) for name in names) if names else NEVER


wildcard_constraints:
    generator=alternation(
        [*GENERATION["generators"], *dict.fromkeys(row["generator"] for row in JOINT)]
    ),
    optimizer=alternation(GENERATION["optimizers"]),
    init=alternation(GENERATION["inits"]),
    model=alternation(MODELS),


def evaluators():
    """Evaluator model names: the configured list, or the whole zoo."""
    return config["evaluation"]["evaluators"] or list(MODELS)


def members(generator):
    """Models of a generator: itself, or the members of a generator set."""
    return generator_members(GENERATOR_SETS, generator)


def member_layers(generator, layer):
    """{member: generating layer} for a generator and a layer (alias, for sets)."""
    return config_member_layers(GENERATOR_SETS, generator, layer)


def weights_files(names):
    """The models' state dicts, in the order of ``names`` (scripts pair them by that order)."""
    return [layout.MODEL_WEIGHTS.format(model=name) for name in names]


def card_files(names):
    return [layout.MODEL_CARD.format(model=name) for name in names]


def model_files(names):
    return [*weights_files(names), *card_files(names)]


def model_specs(names):
    return {name: MODELS[name] for name in names}


def build_spec(name):
    """A model's spec without what only evaluation reads (its scored layers, its family):
    training, nulls and generation take this, so editing those reruns none of them."""
    return zoo_registry.build_spec(MODELS[name])


def build_specs(names):
    return {name: build_spec(name) for name in names}


def condition_files(pattern):
    return [pattern.format(**condition) for condition in CONDITIONS]


def null_files(wildcards):
    """The generator's members' null files at their generating layers, in members' order."""
    layers = member_layers(wildcards.generator, wildcards.layer)
    return [
        layout.NULL.format(model=model, layer=layers[model])
        for model in members(wildcards.generator)
    ]


def decoder_files(generator, layer, init):
    """A learned init's decoder files of the generator's members at their generating layers, in
    members' order; none for other inits."""
    if init not in LEARNED_INITS:
        return []
    layers = member_layers(generator, layer)
    return [
        layout.DECODER.format(init=init, model=model, layer=layers[model])
        for model in members(generator)
    ]


def start_files(wildcards):
    """A shared init's start scores and summary (rule evaluate_starts); none for learned ones."""
    if wildcards.init in LEARNED_INITS:
        return {}
    return {
        f"start_{kind}": START_FILES[kind].format(init=wildcards.init)
        for kind in ("scores", "summary")
    }


def evaluator_nulls():
    """{evaluator: {layer: null file}}: in the evaluation's projected space where it projects
    (the same files as generation's where it does not)."""
    folder = "nulls_projected" if config["evaluation"]["projection_dim"] else "nulls"
    return {
        model: {layer: f"results/{folder}/{model}/{layer}.h5" for layer in MODELS[model]["layers"]}
        for model in evaluators()
    }


def training_recipe(model):
    """A local model's training recipe (its augmentation shapes its null); None if external."""
    return zoo_registry.training_recipe(MODELS[model], config.get("training", {}))


def per_condition_files(conditions):
    """Each per-condition file kind -> that file of every condition, in the conditions' order."""
    return {
        kind: [f"results/{kind}/{layout.CONDITION}.{ext}".format(**row) for row in conditions]
        for kind, ext in (
            ("metamers", "h5"),
            ("activations", "h5"),
            ("scores", "parquet"),
            ("summaries", "parquet"),
        )
    }


def per_item_targets(conditions=CONDITIONS):
    """Every model, null, metamer, activation and score file (of these conditions): listed in
    `rule all` so that a failed rerun of one cannot leave its downstream files looking up to
    date (Snakemake issue 1978)."""
    nulls = {
        layout.NULL.format(model=model, layer=layer)
        for condition in conditions
        for model, layer in member_layers(condition["generator"], condition["layer"]).items()
    }
    nulls.update(path for paths in evaluator_nulls().values() for path in paths.values())
    starts = dict.fromkeys(
        path.format(init=condition["init"])
        for condition in conditions
        if condition["init"] in SHARED_INITS
        for path in START_FILES.values()
    )
    decoders = dict.fromkeys(
        path
        for condition in conditions
        for path in decoder_files(condition["generator"], condition["layer"], condition["init"])
    )
    return [
        *model_files(MODELS),
        REFERENCES,
        "results/activations/references.h5",
        *sorted(nulls),
        *starts,
        *decoders,
        *itertools.chain.from_iterable(per_condition_files(conditions).values()),
    ]


def final_targets():
    return [
        "results/transfer_matrix.pdf",
        "results/transfer_architecture.pdf",
        "results/transfer_seeds.pdf",
        "results/findings.md",
        "results/transfer_summary.parquet",
        "results/zoo.parquet",
        "results/convergence.pdf",
        "results/metamer_grid.pdf",
        "results/generation_study.pdf",
        "results/representation_test.pdf",
        "results/rsa.pdf",
        "results/agreement.pdf",
        "results/scores.parquet",
        "results/summary.parquet",
        "results/generation_summary.parquet",
    ]


def inventory_inputs(stage):
    """The per-item files of a stage: "generation" (references, generators, nulls, metamers)
    or "evaluation" (every per-item file)."""
    files = per_item_targets()
    if stage == "evaluation":
        return files
    generators = {member for name in GENERATION["generators"] for member in members(name)}
    kept = {REFERENCES, *model_files(generators)}
    return [
        path
        for path in files
        if path in kept or path.startswith(("results/nulls/", "results/metamers/"))
    ]


def read_by_jobs():
    """Every file that some job reads: the per-item files, inventories and aggregated tables."""
    tables = ["scores", "summary", "reference_scores", "transfer_summary", "generation_study"]
    inventories = [f"results/inventory/{stage}.json" for stage in ("generation", "evaluation")]
    return [
        *per_item_targets([*CONDITIONS, *JOINT]),
        *inventories,
        *(f"results/{table}.parquet" for table in tables),
    ]


@functools.cache
def repair_mark(stage):
    """The stage's repair mark, computed once per run: Snakemake evaluates params again when
    a job is ready, after the missing files were rebuilt, but records the first value."""
    return preflight.repair_mark(f"results/inventory/{stage}.json", inventory_inputs(stage))


# Before any job starts (and deletes its old outputs): see docs/preflight.md. Only where the DAG
# is planned: a cluster job parses this file again (`--mode remote`), after the check passed.
if workflow.is_main_process:
    preflight.run(config, evaluators(), read_by_jobs(), REFERENCES)
