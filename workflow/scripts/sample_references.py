from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.sample_references(
    snakemake.params.data, snakemake.params.references, snakemake.output[0]
)
