"""sdeml.ode (theme package)."""

__all__: list[str] = []
