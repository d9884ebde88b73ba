import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import joint_plots, store

joint_plots.plot_joint_transfer(
    store.read_table(snakemake.input[0]), snakemake.params.depths, snakemake.output[0],
)
