"""Model metamers: generation, representation tests and transferability.

The library behind the Snakemake pipeline; every module is importable on its own, so the same
code runs in a notebook:

- ``data``: labelled image data sets (embedded Fashion-MNIST, torchvision sets, image folders)
- ``zoo``: a package: the registry of model sources, the local architectures, one module per
  fetched source (torchvision, robustbench, PyPI package, advertorch), loading and layer names
- ``train``: training of the local zoo (standard and adversarially robust)
- ``references``: class-balanced, seeded reference samples
- ``generate``: batched metamer synthesis
- ``criteria``: the success criterion and its null distribution
- ``fake_relu``: Feather et al.'s ReLU with an identity backward, swapped in at one layer
- ``stats``: correlations, pair measures and null percentiles, bootstrap, RSA, CKA
- ``activations``: activations of named layers
- ``scores``: long-format score tables and summaries
- ``store``: HDF5 / Parquet / JSON input and output
- ``layout``: where a run keeps its files, for the rules and the benchmarks that read a run
- ``config``: config files read strictly, schema validation, cross-reference checks
- ``optimizers``: optimiser settings, their one check, and the per-image gradient normalisation
- ``joblog``: a pipeline job's log, and its error shown in the terminal
- ``transfer``: the transfer matrix and transfer by evaluator relation
- ``analysis``: the tables and arrays the figures draw
- ``plots``: figures (drawing only)
"""

__version__ = "0.1.0"
