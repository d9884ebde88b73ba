from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

specs = snakemake.params.specs  # the evaluators, in the order of the weights files
stages.reference_activations(
    dict(zip(specs, snakemake.input.weights)), specs,
    snakemake.input.references, snakemake.params.evaluation,
    snakemake.params.seed, snakemake.output[0], device=snakemake.params.device,
    threads=snakemake.threads,
)
