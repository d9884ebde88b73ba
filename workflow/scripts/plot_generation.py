from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import analysis, plots, store

metamer_sets = [store.read_metamers(path) for path in snakemake.input.metamers]
references = store.read_references(snakemake.input.references)
conditions = snakemake.params.conditions
plots.plot_convergence(analysis.loss_quantiles(conditions,
                                               [content["loss"] for content in metamer_sets]),
                       snakemake.output.convergence)
plots.plot_metamer_grid(references["images"], references["class_names"], conditions,
                        metamer_sets, snakemake.params.per_condition, snakemake.output.grid)
plots.plot_generation_study(store.read_table(snakemake.input.generation),
                            store.read_table(snakemake.input.generation_summary),
                            snakemake.output.study)
