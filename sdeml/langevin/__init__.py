"""sdeml.langevin (theme package)."""

__all__: list[str] = []
