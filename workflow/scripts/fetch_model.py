import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import stages

stages.fetch_external_model(
    snakemake.params.spec, snakemake.output.weights, snakemake.output.card,
    snakemake.params.model_dir,
)
