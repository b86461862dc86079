"""sdeml.neural_ode (theme package)."""

__all__: list[str] = []
