import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import stages

stages.train_local_model(
    snakemake.params.spec, snakemake.params.training, snakemake.params.data,
    snakemake.output.weights, snakemake.output.card,
    device=snakemake.params.device, threads=snakemake.threads,
)
