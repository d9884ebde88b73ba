from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

specs = snakemake.params.specs
stages.generate_metamers(
    weights_paths={name: f"resources/models/{name}.pt" for name in specs},
    specs=specs,
    layers=snakemake.params.layers,
    null_paths={name: f"results/nulls/{name}/{layer}.h5"
                for name, layer in snakemake.params.layers.items()},
    references_path=snakemake.input.references,
    optimizer=snakemake.params.optimizer,
    init=snakemake.params.init,
    budget=snakemake.params.budget,
    criterion=snakemake.params.criterion,
    channels_last=snakemake.params.channels_last,
    compile_mode=snakemake.params.compile_mode,
    fake_relu=snakemake.params.fake_relu,
    seed=snakemake.params.seed,
    path=snakemake.output[0],
    device=snakemake.params.device,
    threads=snakemake.threads,
)
