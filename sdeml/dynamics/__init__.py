"""sdeml.dynamics (theme package)."""

__all__: list[str] = []
