import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import stages

stages.aggregate(
    snakemake.input.scores, snakemake.input.summaries, snakemake.input.reference_activations,
    snakemake.input.references, snakemake.output.scores, snakemake.output.summary,
    snakemake.output.references,
)
