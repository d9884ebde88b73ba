rule null_distribution:
    """Every measure's null at one (model, layer): pairs of distinct training images (or of
    references); generation and the evaluation's representation test read it."""
    input:
        model=lambda wildcards: model_files([wildcards.model]),
        references=REFERENCES,
    output:
        layout.NULL,
    log:
        "logs/null_distribution/{model}/{layer}.log",
    threads: 1
    params:
        spec=lambda wildcards: build_spec(wildcards.model),
        training=lambda wildcards: training_recipe(wildcards.model),
        settings=config["criterion"]["null_distribution"],
        threshold=config["criterion"]["threshold"],
        data=config["data"],
        projection_dim=None,
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/null_distribution.py"


use rule null_distribution as projected_null_distribution with:
    output:
        "results/nulls_projected/{model}/{layer}.h5",
    log:
        "logs/projected_null_distribution/{model}/{layer}.log",
    params:
        spec=lambda wildcards: build_spec(wildcards.model),
        training=lambda wildcards: training_recipe(wildcards.model),
        settings=config["criterion"]["null_distribution"],
        threshold=config["criterion"]["threshold"],
        data=config["data"],
        projection_dim=config["evaluation"]["projection_dim"],
        seed=config["seed"],
        device=config["device"],


rule train_decoder:
    """A learned init's decoder of one (model, layer): from its activations back to the image,
    fitted to training images; every generator with that member and layer starts from it."""
    input:
        model=lambda wildcards: model_files([wildcards.model]),
    output:
        layout.DECODER,
    log:
        "logs/train_decoder/{init}/{model}/{layer}.log",
    wildcard_constraints:
        init=alternation(LEARNED_INITS),
    threads: 1
    resources:
        runtime=60,
        mem_mb=6000,
        gpu=1,
    params:
        spec=lambda wildcards: build_spec(wildcards.model),
        settings=lambda wildcards: decoder_settings(config["inits"][wildcards.init]),
        data=config["data"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/train_decoder.py"


rule generate_metamers:
    """All references' metamers for one (generator, layer, optimizer, init), batched."""
    input:
        weights=lambda wildcards: weights_files(members(wildcards.generator)),
        cards=lambda wildcards: card_files(members(wildcards.generator)),
        nulls=null_files,
        references=REFERENCES,
        decoders=lambda wildcards: decoder_files(
            wildcards.generator, wildcards.layer, wildcards.init
        ),
    output:
        layout.METAMERS,
    log:
        f"logs/generate_metamers/{layout.CONDITION}.log",
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
        criterion=config["criterion"],
        channels_last=GENERATION["channels_last"],
        compile_mode=GENERATION["compile"],
        fake_relu=GENERATION["fake_relu"],
        l1_weight=GENERATION["l1_weight"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/generate_metamers.py"
