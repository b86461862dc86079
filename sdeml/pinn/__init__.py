"""sdeml.pinn (theme package)."""

__all__: list[str] = []
