rule evaluate_starts:
    """One init's starting images, the same for every condition that starts there: their
    activations in every evaluator, scores and summary, made once and copied into each
    condition's tables by evaluate_condition."""
    input:
        weights=weights_files(evaluators()),
        cards=card_files(evaluators()),
        references=REFERENCES,
        reference_activations="results/activations/references.h5",
        nulls=[path for paths in evaluator_nulls().values() for path in paths.values()],
    output:
        **START_FILES,
    log:
        "logs/evaluate_starts/{init}.log",
    wildcard_constraints:
        init=alternation(SHARED_INITS),
    threads: 1  # as evaluate_condition: the same activations whatever --cores
    resources:
        runtime=60,
        mem_mb=4000,
        gpu=1,
    params:
        specs=model_specs(evaluators()),
        evaluation=config["evaluation"],
        null_paths=evaluator_nulls(),
        criterion=config["criterion"],
        init=lambda wildcards: config["inits"][wildcards.init],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/evaluate_starts.py"


rule evaluate_condition:
    """One condition: every evaluator's activations of its metamers and pixel controls, then
    its long-format scores and summary (with its init's start rows), in one job."""
    input:
        unpack(start_files),
        weights=weights_files(evaluators()),
        cards=card_files(evaluators()),
        metamers=layout.METAMERS,
        references=REFERENCES,
        reference_activations="results/activations/references.h5",
        nulls=[path for paths in evaluator_nulls().values() for path in paths.values()],
    output:
        activations=f"results/activations/{layout.CONDITION}.h5",
        scores=f"results/scores/{layout.CONDITION}.parquet",
        summary=f"results/summaries/{layout.CONDITION}.parquet",
    log:
        f"logs/evaluate_condition/{layout.CONDITION}.log",
    threads: 1  # jobs run side by side; activations do not depend on --cores
    resources:
        runtime=60,
        mem_mb=4000,
        gpu=1,
    params:
        specs=model_specs(evaluators()),
        evaluation=config["evaluation"],
        null_paths=evaluator_nulls(),
        criterion=config["criterion"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/evaluate_condition.py"


rule aggregate_scores:
    """One table of every condition's scores, one of summaries, one of the references' scores."""
    input:
        scores=condition_files(f"results/scores/{layout.CONDITION}.parquet"),
        summaries=condition_files(f"results/summaries/{layout.CONDITION}.parquet"),
        reference_activations="results/activations/references.h5",
        references=REFERENCES,
        inventory="results/inventory/evaluation.json",
    output:
        scores="results/scores.parquet",
        summary="results/summary.parquet",
        references="results/reference_scores.parquet",
    log:
        "logs/aggregate_scores.log",
    script:
        "../scripts/aggregate_scores.py"


rule aggregate_generation:
    """The generation study from the metamer files alone (no evaluation needed)."""
    input:
        metamers=condition_files(layout.METAMERS),
        inventory="results/inventory/generation.json",
    output:
        generation="results/generation_study.parquet",
        generation_summary="results/generation_summary.parquet",
    log:
        "logs/aggregate_generation.log",
    params:
        conditions=CONDITIONS,
    script:
        "../scripts/aggregate_generation.py"


rule transfer_answers:
    """Transfer grouped by evaluator relation (same model, other seed, other training, other
    architecture), the zoo table, and findings.md written from those numbers."""
    input:
        scores="results/scores.parquet",
        cards=card_files(MODELS),
        joint=["results/joint_transfer.parquet"] if JOINT else [],
    output:
        summary="results/transfer_summary.parquet",
        zoo="results/zoo.parquet",
        findings=report(
            "results/findings.md", caption="../report/findings.rst", category="Transfer"
        ),
    log:
        "logs/transfer_answers.log",
    params:
        models=MODELS,
        training=config.get("training", {}),
        members={generator: members(generator) for generator in GENERATION["generators"]},
        generators=GENERATION["generators"],
        layers={name: MODELS[name]["layers"] for name in evaluators()},
        seed=config["seed"],
    script:
        "../scripts/transfer_answers.py"
