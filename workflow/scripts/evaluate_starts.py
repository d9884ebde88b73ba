from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

specs = snakemake.params.specs  # the evaluators, in the order of the weights files
stages.evaluate_starts(
    dict(zip(specs, snakemake.input.weights)), specs, snakemake.input.references,
    snakemake.input.reference_activations, snakemake.params.null_paths,
    snakemake.params.evaluation, snakemake.params.criterion, snakemake.wildcards.init,
    snakemake.params.init, snakemake.params.seed, snakemake.output.activations,
    snakemake.output.scores, snakemake.output.summary,
    device=snakemake.params.device, threads=snakemake.threads,
)
