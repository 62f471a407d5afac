"""On-disk runs: each ``golf`` subcommand's work as a library function of typed settings
(``golf.presets``). The CLI only parses options into those settings; ``golf run`` calls these
functions, never the CLI.

    data          what the runs share (validated oracle spec and executor, conformation choice, ...)
    build         ``golf data build``: oracle labels into an ASE db
    reference     ``golf data reference``: the genuine oracle's own optima
    trajectories  ``golf data trajectories``: traj-N datasets
    train         ``golf train``: an NNP and its run directory
    golf          ``golf train --golf``: a GOLF run (persistence and resume around ``golf.loop``)
    evaluate      ``golf evaluate``: metrics.json / metrics.png
    experiment    ``golf run``: every stage above, cached, and the report
    naming        model and directory names of training seeds (``baseline-s2``, ``golf-s2/``)
"""
