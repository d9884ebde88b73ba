import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import stages

stages.aggregate_generation(
    snakemake.input.metamers, snakemake.params.conditions, snakemake.output.generation,
    snakemake.output.generation_summary,
)
