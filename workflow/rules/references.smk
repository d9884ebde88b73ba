rule sample_references:
    """Class-balanced, seeded sample of test images."""
    output:
        REFERENCES,
    params:
        data=config["data"],
        references=config["references"],
    log:
        "logs/sample_references.log",
    script:
        "../scripts/sample_references.py"
