from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import joint

joint.write_joint_transfer(
    snakemake.params.design, snakemake.input.metamers, snakemake.input.scores,
    snakemake.params.evaluators, snakemake.params.pool, snakemake.params.deepest,
    snakemake.params.depths, snakemake.params.seed, snakemake.output[0],
)
