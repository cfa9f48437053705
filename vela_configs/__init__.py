"""Shipped Ethos-U targets, Vela system configs and budgets (package data, read with importlib.resources).

Installed as `sepipe.vela_configs`; the files are listed in README.md beside this one.
"""
