from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.null_distribution(
    snakemake.input.model[0], snakemake.params.spec, snakemake.wildcards.layer,
    snakemake.params.settings, snakemake.params.threshold, snakemake.params.data,
    snakemake.params.training,
    snakemake.input.references, snakemake.params.seed, snakemake.output[0],
    projection_dim=snakemake.params.projection_dim, device=snakemake.params.device,
    threads=snakemake.threads,
)
