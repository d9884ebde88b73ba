# Jointly optimised metamers (config["joint"], docs/joint.md): N-model sets drawn from a pool,
# every metamer judged only by models that are not members.
JOINT_SECTION = config.get("joint", {})
JOINT_KINDS = [
    ("metamers", "h5"),
    ("activations", "h5"),
    ("scores", "parquet"),
    ("summaries", "parquet"),
]


def joint_files(kind, ext):
    """One per-condition file of `kind` per joint design row, in the design's order."""
    return [f"results/{kind}/{CONDITION_PATH}.{ext}".format(**row) for row in JOINT]


def joint_targets():
    """The joint answer and its per-condition files; none without a `joint` section."""
    if not JOINT:
        return []
    per_condition = [joint_files(kind, ext) for kind, ext in JOINT_KINDS]
    return [
        "results/joint_transfer.pdf",
        *dict.fromkeys(itertools.chain.from_iterable(per_condition)),
    ]


rule joint_transfer:
    """Held-out transfer, success and cost of jointly optimised metamers against set size."""
    input:
        metamers=joint_files("metamers", "h5"),
        scores=joint_files("scores", "parquet"),
    output:
        "results/joint_transfer.parquet",
    log:
        "logs/joint_transfer.log",
    params:
        design=JOINT,
        evaluators=evaluators(),
        pool=sorted(JOINT_SECTION.get("pool", {})),
        deepest={name: MODELS[name]["layers"][-1] for name in evaluators()},
        depths=JOINT_SECTION.get("depths", []),
        seed=config["seed"],
    script:
        "../scripts/joint_transfer.py"


rule plot_joint_transfer:
    """Held-out transfer and cost against the number of models optimised at once."""
    input:
        "results/joint_transfer.parquet",
    output:
        report(
            "results/joint_transfer.pdf",
            caption="../report/joint_transfer.rst",
            category="Transfer",
        ),
    log:
        "logs/plots/joint_transfer.log",
    params:
        depths=JOINT_SECTION.get("depths", []),
    script:
        "../scripts/plot_joint_transfer.py"
