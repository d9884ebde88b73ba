import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from metamers import store

store.write_json(snakemake.output[0],
                 {"repair": snakemake.params.repair, "files": list(snakemake.input)})
