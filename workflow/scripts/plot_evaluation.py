from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import analysis, plots, store

summary = store.read_table(snakemake.input.summary)
layers = snakemake.params.layers
references = store.read_references(snakemake.input.references)
evaluator, layer = analysis.rsa_layer(layers)
reference_activations = store.read_activations(snakemake.input.reference_activations)
metamer_activations = [store.read_activations(path)[evaluator]["metamer"][layer]
                       for path in snakemake.input.activations]
plots.plot_representation_test(analysis.representation_curves(summary, layers), layers,
                               snakemake.output.representation)
rdms, points = analysis.representational_geometry(
    reference_activations[evaluator]["reference"][layer], metamer_activations)
plots.plot_rsa(rdms, points, snakemake.params.conditions,
               analysis.rsa_scores(summary, evaluator, layer), references["labels"],
               references["class_names"], evaluator, layer, snakemake.output.rsa)
agreement = analysis.agreement_table(summary, layers)
plots.plot_agreement(agreement, analysis.agreement_correlations(agreement),
                     snakemake.output.agreement)
