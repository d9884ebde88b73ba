import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import joint

joint.write_joint_transfer(
    snakemake.params.design, snakemake.input.metamers, snakemake.input.scores,
    snakemake.params.evaluators, snakemake.params.pool, snakemake.params.deepest,
    snakemake.params.depths, snakemake.params.seed, snakemake.output[0],
)
