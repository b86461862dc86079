"""Shipped experiments: each module registers one with `sdeml.run.register` when imported."""
