from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.aggregate(
    snakemake.input.scores, snakemake.input.summaries, snakemake.input.reference_activations,
    snakemake.input.references, snakemake.output.scores, snakemake.output.summary,
    snakemake.output.references,
)
