rule inventory:
    """The per-item files a stage's aggregates summarise. Snakemake rebuilds a missing file
    only for a job that must run: a new repair mark (a file listed here went missing) makes
    this job run, so a named target rebuilds the missing files it needs (docs/preflight.md)."""
    input:
        lambda wildcards: inventory_inputs(wildcards.stage),
    output:
        "results/inventory/{stage}.json",
    log:
        "logs/inventory/{stage}.log",
    wildcard_constraints:
        stage="generation|evaluation",
    localrule: True
    params:
        repair=lambda wildcards: repair_mark(wildcards.stage),
    script:
        "../scripts/inventory.py"
