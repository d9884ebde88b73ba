from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import stages

specs = snakemake.params.specs
stages.reference_activations(
    {name: f"resources/models/{name}.pt" for name in specs}, specs,
    snakemake.input.references, snakemake.params.evaluation,
    snakemake.params.seed, snakemake.output[0], device=snakemake.params.device,
    threads=snakemake.threads,
)
