# Jointly optimised metamers (config["joint"], docs/joint.md): N-model sets drawn from a pool,
# every metamer judged only by models that are not members.
JOINT_SECTION = config.get("joint", {})
JOINT_FILES = per_condition_files(JOINT)  # one file per design row, in the design's order
JOINT_TARGETS = (
    [
        "results/joint_transfer.pdf",
        *dict.fromkeys(itertools.chain.from_iterable(JOINT_FILES.values())),
    ]
    if JOINT
    else []
)


rule joint_transfer:
    """Held-out transfer, success and cost of jointly optimised metamers against set size."""
    input:
        metamers=JOINT_FILES["metamers"],
        scores=JOINT_FILES["scores"],
    output:
        "results/joint_transfer.parquet",
    log:
        "logs/joint_transfer.log",
    params:
        design=JOINT,
        evaluators=evaluators(),
        pool=sorted(JOINT_SECTION.get("pool", {})),
        deepest=deepest_layers({name: MODELS[name]["layers"] for name in evaluators()}),
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
