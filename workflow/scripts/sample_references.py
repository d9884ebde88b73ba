import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import stages

stages.sample_references(
    snakemake.params.data, snakemake.params.references, snakemake.output[0]
)
