# Model metamers: generation, representation tests and transferability.
# Main use: snakemake --cores all results/transfer_matrix.pdf
from snakemake.utils import min_version

from metamers.config import check_config_files

min_version("9.0")


# The embedded default, unless `--configfile` names another (whole) config: merging the two
# would mix both zoos.
if not config:
    # Snakemake's own loader would name neither the file nor the line of a syntax error.
    check_config_files(["config/config.yaml"])

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/references.smk"
include: "workflow/rules/metamers.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/joint.smk"
include: "workflow/rules/inventory.smk"


rule all:
    input:
        final_targets(),
        per_item_targets(),
        JOINT_TARGETS,
