"""sdeml.flows (theme package)."""

__all__: list[str] = []
