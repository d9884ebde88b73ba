rule reference_activations:
    """Every evaluator's activations of the references (the ceiling and the nulls)."""
    input:
        weights=weights_files(evaluators()),
        cards=card_files(evaluators()),
        references=REFERENCES,
    output:
        "results/activations/references.h5",
    log:
        "logs/reference_activations.log",
    threads: 1  # as evaluate_condition: activations that do not depend on --cores
    resources:
        runtime=60,
        mem_mb=4000,
        gpu=1,
    params:
        specs=model_specs(evaluators()),
        evaluation=config["evaluation"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/reference_activations.py"
