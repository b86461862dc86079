"""The shipped configs (YAML data only), installed as package data of ``sdeml.configs``.

This file makes the folder a regular package, which both a wheel and an editable install can
map into sdeml's namespace; the CLI finds the YAML files with `importlib.resources`.
"""
