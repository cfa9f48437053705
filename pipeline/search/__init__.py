"""`sepipe search`: a multi-objective search (NSGA-II, pymoo) over per-layer offline compression.

    config.py    the experiment YAML's `search:` section (SearchConfig), read beside the experiment
    genes.py     the genome: per-layer sparsity and clustering genes, decoded into a Candidate
    scoring.py   one candidate scored cheaply: offline edit of the int8 bytes, SI-SDR through the TFLite
                 interpreter on fixed validation files, Vela figures through the compile cache, budgets
    store.py     scored candidates recorded atomically (one JSON each): a rerun skips them
    driver.py    the NSGA-II loop (pymoo ask/tell), candidates scored in worker processes or on Ray
    front.py     the Pareto front: table (CSV/Markdown), plot, and one experiment YAML per chosen member

A candidate is an `offline` variant (sepipe.compress.kinds.offline with per-layer `layers` and
`layer_clusters`), so `sepipe run` on a chosen member's YAML rebuilds the same bytes, hence the same figures.
"""
