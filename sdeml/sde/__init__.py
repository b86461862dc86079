"""sdeml.sde (theme package)."""

__all__: list[str] = []
