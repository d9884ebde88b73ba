rule train_model:
    """Train a local zoo model on the embedded data set; report its test accuracy."""
    output:
        weights="resources/models/{model}.pt",
        card="resources/models/{model}.json",
    wildcard_constraints:
        model=alternation(LOCAL_MODELS),
    params:
        spec=lambda wildcards: MODELS[wildcards.model],
        training=lambda wildcards: config["training"][MODELS[wildcards.model]["training"]],
        data=config["data"],
        device=config["device"],
    log:
        "logs/train_model/{model}.log",
    threads: 4  # scaled down to --cores when run locally; CPUs per task on a cluster
    resources:
        runtime=60,
        mem_mb=4000,
    script:
        "../scripts/train_model.py"


rule fetch_model:
    """Load an external model (torchvision / RobustBench) from its local cache; never downloads."""
    output:
        weights="resources/models/{model}.pt",
        card="resources/models/{model}.json",
    wildcard_constraints:
        model=alternation(EXTERNAL_MODELS),
    params:
        spec=lambda wildcards: MODELS[wildcards.model],
        model_dir="resources/robustbench",
    log:
        "logs/fetch_model/{model}.log",
    script:
        "../scripts/fetch_model.py"


rule list_layers:
    """Print every model's layer names (bare architectures: no weights or training needed)."""
    localrule: True
    run:
        from metamers.layers import format_layers, model_layers

        print(format_layers(model_layers(config)))
