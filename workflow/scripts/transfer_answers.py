import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import stages

stages.transfer_answers(
    snakemake.input.scores,
    dict(zip(snakemake.params.models, snakemake.input.cards)),
    snakemake.params.models, snakemake.params.training, snakemake.params.members,
    snakemake.params.generators, snakemake.params.layers, snakemake.params.seed,
    snakemake.output.summary, snakemake.output.zoo, snakemake.output.findings,
    snakemake.input.joint,
)
