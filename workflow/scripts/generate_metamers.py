from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

specs = snakemake.params.specs  # the members, in the order of the weights and null files
stages.generate_metamers(
    weights_paths=dict(zip(specs, snakemake.input.weights)),
    specs=specs,
    layers=snakemake.params.layers,
    null_paths=dict(zip(specs, snakemake.input.nulls)),
    references_path=snakemake.input.references,
    optimizer=snakemake.params.optimizer,
    init=snakemake.params.init,
    budget=snakemake.params.budget,
    criterion=snakemake.params.criterion,
    channels_last=snakemake.params.channels_last,
    compile_mode=snakemake.params.compile_mode,
    fake_relu=snakemake.params.fake_relu,
    l1_weight=snakemake.params.l1_weight,
    seed=snakemake.params.seed,
    path=snakemake.output[0],
    device=snakemake.params.device,
    threads=snakemake.threads,
    decoder_paths=dict(zip(specs, snakemake.input.decoders)) or None,
)
