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
    threads: 2  # torch's threads; scaled down to --cores when run locally
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


rule metamer_activations:
    """Every evaluator's activations of one condition's metamers, pixel controls and starts."""
    input:
        weights=weights_files(evaluators()),
        cards=card_files(evaluators()),
        metamers=f"results/metamers/{CONDITION_PATH}.h5",
        references=REFERENCES,
    output:
        f"results/activations/{CONDITION_PATH}.h5",
    log:
        f"logs/metamer_activations/{CONDITION_PATH}.log",
    group:  # on a cluster, one submission per condition runs this and score_condition
        "evaluate_condition"
    threads: 2
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
        "../scripts/metamer_activations.py"
