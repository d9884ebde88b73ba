from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import plots, store

summary = store.read_table(snakemake.input.summary)
layers = snakemake.params.layers
references = store.read_references(snakemake.input.references)
evaluator, layer = plots.deepest_layer(layers)
reference_activations = store.read_activations(snakemake.input.reference_activations)
metamer_activations = [store.read_activations(path)[evaluator]["metamer"][layer]
                       for path in snakemake.input.activations]
plots.plot_representation_test(summary, layers, snakemake.output.representation)
plots.plot_rsa(reference_activations[evaluator]["reference"][layer], metamer_activations,
               snakemake.params.conditions, summary, references["labels"],
               references["class_names"], evaluator, layer, snakemake.output.rsa)
plots.plot_agreement(summary, layers, snakemake.output.agreement)
