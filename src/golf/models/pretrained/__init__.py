"""Package data: the official GOLF-10k and baseline-NNP checkpoints (MIT, Copyright (c) 2024 AIRI).

See ``PROVENANCE.md`` and ``LICENSE`` in this directory; load them by name with
``golf.load_model("GOLF-10k")`` (``golf.models.registry``)."""
