rule sample_references:
    """Class-balanced, seeded sample of test images."""
    output:
        REFERENCES,
    log:
        "logs/sample_references.log",
    params:
        data=config["data"],
        references=config["references"],
    script:
        "../scripts/sample_references.py"
