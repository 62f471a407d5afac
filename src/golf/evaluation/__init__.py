"""Evaluation of relaxations: the paper's metrics (``metrics``), bootstrap and paired intervals
(``stats``), model and MMFF relaxation trajectories scored by the oracle (``scoring``), figures
(``plots``) and the report of ``golf run`` (``report``).

Importing the package imports none of them (``golf.presets`` imports ``metrics`` only, without torch).
"""
