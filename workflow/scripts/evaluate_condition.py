from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

specs = snakemake.params.specs  # the evaluators, in the order of the weights files
stages.evaluate_condition(
    dict(zip(specs, snakemake.input.weights)), specs,
    snakemake.input.metamers, snakemake.input.references,
    snakemake.input.reference_activations, snakemake.params.null_paths,
    snakemake.params.evaluation, snakemake.params.criterion,
    dict(snakemake.wildcards.items()), snakemake.params.seed,
    snakemake.input.get("start_scores"), snakemake.input.get("start_summary"),
    snakemake.output.activations, snakemake.output.scores, snakemake.output.summary,
    device=snakemake.params.device, threads=snakemake.threads,
)
