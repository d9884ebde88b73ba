from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

stages.transfer_matrix(snakemake.input.scores, snakemake.input.references, snakemake.output[0])
