"""sdeml.optim_dynamics (theme package)."""

__all__: list[str] = []
