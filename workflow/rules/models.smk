rule train_model:
    """Train a local zoo model on the embedded data set; report its test accuracy."""
    output:
        weights=layout.MODEL_WEIGHTS,
        card=layout.MODEL_CARD,
    log:
        "logs/train_model/{model}.log",
    wildcard_constraints:
        model=alternation(LOCAL_MODELS),
    threads: 1  # two train at once on 2 cores; weights do not depend on --cores or the node
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        spec=lambda wildcards: build_spec(wildcards.model),
        training=lambda wildcards: training_recipe(wildcards.model),
        data=config["data"],
        device=config["device"],
    script:
        "../scripts/train_model.py"


rule fetch_model:
    """Load an external model (torchvision / RobustBench) from its local cache; never downloads."""
    output:
        weights=layout.MODEL_WEIGHTS,
        card=layout.MODEL_CARD,
    log:
        "logs/fetch_model/{model}.log",
    wildcard_constraints:
        model=alternation(EXTERNAL_MODELS),
    params:
        spec=lambda wildcards: build_spec(wildcards.model),
        model_dir="resources/robustbench",
    script:
        "../scripts/fetch_model.py"


rule list_layers:
    """Print every model's layer names (bare architectures: no weights or training needed)."""
    log:
        "logs/list_layers.log",
    localrule: True
    script:
        "../scripts/list_layers.py"
