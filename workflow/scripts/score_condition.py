import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import stages

stages.score_condition(
    snakemake.input.activations, snakemake.input.reference_activations,
    snakemake.input.metamers, snakemake.params.null_paths, snakemake.params.criterion,
    dict(snakemake.wildcards.items()), snakemake.params.seed,
    snakemake.output.scores, snakemake.output.summary, threads=snakemake.threads,
)
