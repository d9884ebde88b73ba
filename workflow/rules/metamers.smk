rule null_distribution:
    """Spearman correlations between different references at one (model, layer)."""
    input:
        model=lambda wildcards: model_files([wildcards.model]),
        references=REFERENCES,
    output:
        "results/nulls/{model}/{layer}.h5",
    log:
        "logs/null_distribution/{model}/{layer}.log",
    threads: 1
    params:
        spec=lambda wildcards: build_spec(wildcards.model),
        percentile=GENERATION["null_percentile"],
        max_pairs=GENERATION["null_max_pairs"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/null_distribution.py"


rule generate_metamers:
    """All references' metamers for one (generator, layer, optimizer, init), batched."""
    input:
        models=lambda wildcards: model_files(members(wildcards.generator)),
        nulls=null_files,
        references=REFERENCES,
    output:
        f"results/metamers/{CONDITION_PATH}.h5",
    log:
        f"logs/generate_metamers/{CONDITION_PATH}.log",
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
        gpu=1,
    params:
        specs=lambda wildcards: build_specs(members(wildcards.generator)),
        layers=lambda wildcards: member_layers(wildcards.generator, wildcards.layer),
        optimizer=lambda wildcards: config["optimizers"][wildcards.optimizer],
        init=lambda wildcards: config["inits"][wildcards.init],
        budget={
            k: GENERATION[k]
            for k in ("max_iterations", "check_every", "stop_on_success", "checkpoint_every")
        },
        channels_last=GENERATION["channels_last"],
        compile_mode=GENERATION["compile"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/generate_metamers.py"
