from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.aggregate_generation(
    snakemake.input.metamers, snakemake.params.conditions, snakemake.output.generation,
    snakemake.output.generation_summary,
)
