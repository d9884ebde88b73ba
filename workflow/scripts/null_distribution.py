from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.null_distribution(
    snakemake.input.model[0], snakemake.params.spec, snakemake.wildcards.layer,
    snakemake.input.references, snakemake.params.percentile,
    snakemake.params.max_pairs, snakemake.params.seed, snakemake.output[0],
    device=snakemake.params.device, threads=snakemake.threads,
)
