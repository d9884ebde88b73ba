"""Where a pipeline run keeps its files, relative to the run's folder.

One definition for the workflow's rules (as Snakemake patterns: the ``{...}`` are wildcards) and
for the benchmarks that read a finished run (``run / NULL.format(model=..., layer=...)``).
"""

MODEL_WEIGHTS = "resources/models/{model}.pt"
MODEL_CARD = "resources/models/{model}.json"
REFERENCES = "resources/references/{dataset}.h5"
NULL = "results/nulls/{model}/{layer}.h5"
DECODER = "results/decoders/{init}/{model}/{layer}.pt"
CONDITION = "{generator}/{layer}/{optimizer}/{init}"
METAMERS = f"results/metamers/{CONDITION}.h5"
