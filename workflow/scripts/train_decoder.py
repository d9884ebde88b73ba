from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.train_decoder(
    weights_path=snakemake.input.model[0],
    spec=snakemake.params.spec,
    layer=snakemake.wildcards.layer,
    data_spec=snakemake.params.data,
    settings=snakemake.params.settings,
    seed=snakemake.params.seed,
    path=snakemake.output[0],
    device=snakemake.params.device,
    threads=snakemake.threads,
)
