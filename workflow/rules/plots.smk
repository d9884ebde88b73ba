rule transfer_matrix:
    """Recognizability of every condition's images by every evaluator: the table the transfer
    matrix figure draws."""
    input:
        scores="results/scores.parquet",
        references="results/reference_scores.parquet",
    output:
        "results/transfer_matrix.parquet",
    log:
        "logs/transfer_matrix.log",
    script:
        "../scripts/transfer_matrix.py"


rule plot_transfer_matrix:
    input:
        matrix="results/transfer_matrix.parquet",
        reference_images=REFERENCES,
    output:
        report(
            "results/transfer_matrix.pdf",
            caption="../report/transfer_matrix.rst",
            category="Transfer",
        ),
    log:
        "logs/plots/transfer_matrix.log",
    params:
        members={generator: members(generator) for generator in GENERATION["generators"]},
    script:
        "../scripts/plot_transfer_matrix.py"


rule plot_generation:
    """Convergence curves, metamer grids and the generation study."""
    input:
        metamers=condition_files(layout.METAMERS),
        references=REFERENCES,
        generation="results/generation_study.parquet",
        generation_summary="results/generation_summary.parquet",
    output:
        convergence=report(
            "results/convergence.pdf", caption="../report/convergence.rst", category="Generation"
        ),
        grid=report(
            "results/metamer_grid.pdf", caption="../report/metamer_grid.rst", category="Generation"
        ),
        study=report(
            "results/generation_study.pdf",
            caption="../report/generation_study.rst",
            category="Generation",
        ),
    log:
        "logs/plots/generation.log",
    params:
        conditions=CONDITIONS,
        per_condition=config["plots"]["grid_per_condition"],
    script:
        "../scripts/plot_generation.py"


rule plot_evaluation:
    """Representation test over depth, RSA and agreement of the two tests."""
    input:
        summary="results/summary.parquet",
        references=REFERENCES,
        reference_activations="results/activations/references.h5",
        activations=condition_files(f"results/activations/{layout.CONDITION}.h5"),
    output:
        representation=report(
            "results/representation_test.pdf",
            caption="../report/representation_test.rst",
            category="Evaluation",
        ),
        rsa=report("results/rsa.pdf", caption="../report/rsa.rst", category="Evaluation"),
        agreement=report(
            "results/agreement.pdf", caption="../report/agreement.rst", category="Evaluation"
        ),
    log:
        "logs/plots/evaluation.log",
    params:
        conditions=CONDITIONS,
        layers={name: MODELS[name]["layers"] for name in evaluators()},
    script:
        "../scripts/plot_evaluation.py"


rule plot_transfer_relations:
    """Transfer by evaluator relation: by generator training style, and across seeds."""
    input:
        summary="results/transfer_summary.parquet",
        reference_images=REFERENCES,
    output:
        architecture=report(
            "results/transfer_architecture.pdf",
            caption="../report/transfer_architecture.rst",
            category="Transfer",
        ),
        seeds=report(
            "results/transfer_seeds.pdf",
            caption="../report/transfer_seeds.rst",
            category="Transfer",
        ),
    log:
        "logs/plots/transfer_relations.log",
    script:
        "../scripts/plot_transfer_relations.py"
