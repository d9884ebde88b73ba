from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import plots, store

plots.plot_transfer_matrix(
    store.read_table(snakemake.input.matrix), snakemake.params.members,
    len(store.read_references(snakemake.input.reference_images)["class_names"]),
    snakemake.output[0],
)
