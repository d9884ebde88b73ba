from metamers.layers import format_layers, model_layers

listing = format_layers(model_layers(snakemake.config))
print(listing)
with open(snakemake.log[0], "w") as log_file:
    log_file.write(listing + "\n")
