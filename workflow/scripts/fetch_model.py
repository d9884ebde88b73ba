from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.fetch_external_model(
    snakemake.params.spec, snakemake.output.weights, snakemake.output.card,
    snakemake.params.model_dir,
)
