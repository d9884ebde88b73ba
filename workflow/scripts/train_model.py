from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.train_local_model(
    snakemake.params.spec, snakemake.params.training, snakemake.params.data,
    snakemake.output.weights, snakemake.output.card,
    device=snakemake.params.device, threads=snakemake.threads,
)
