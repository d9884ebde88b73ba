import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import stages

specs = snakemake.params.specs
stages.metamer_activations(
    {name: f"resources/models/{name}.pt" for name in specs}, specs,
    snakemake.input.metamers, snakemake.input.references,
    snakemake.params.evaluation, snakemake.params.seed, snakemake.output[0],
    device=snakemake.params.device, threads=snakemake.threads,
)
