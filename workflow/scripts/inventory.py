from metamers.joblog import send_stderr_to

send_stderr_to(snakemake.log[0])

from metamers import store

store.write_json(snakemake.output[0],
                 {"repair": snakemake.params.repair, "files": list(snakemake.input)})
