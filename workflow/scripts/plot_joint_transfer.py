from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import joint_plots, store

joint_plots.plot_joint_transfer(
    store.read_table(snakemake.input[0]), snakemake.params.depths, snakemake.output[0],
)
