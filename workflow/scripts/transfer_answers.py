from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.transfer_answers(
    snakemake.input.scores,
    dict(zip(snakemake.params.models, snakemake.input.cards)),
    snakemake.params.models, snakemake.params.training, snakemake.params.members,
    snakemake.params.generators, snakemake.params.layers, snakemake.params.seed,
    snakemake.output.summary, snakemake.output.zoo, snakemake.output.findings,
    snakemake.input.joint,
)
