from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.score_condition(
    snakemake.input.activations, snakemake.input.reference_activations,
    snakemake.input.metamers, snakemake.params.null_paths, snakemake.params.criterion,
    dict(snakemake.wildcards.items()), snakemake.params.seed,
    snakemake.output.scores, snakemake.output.summary, threads=snakemake.threads,
)
