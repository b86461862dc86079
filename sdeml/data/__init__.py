"""sdeml.data."""

__all__: list[str] = []
