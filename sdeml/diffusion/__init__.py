"""sdeml.diffusion (theme package)."""

__all__: list[str] = []
