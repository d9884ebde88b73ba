from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import store, transfer_plots

transfer_plots.plot_transfer_figures(
    store.read_table(snakemake.input.summary),
    len(store.read_references(snakemake.input.reference_images)["class_names"]),
    snakemake.output.architecture, snakemake.output.seeds,
)
