"""Figures. Every plotting function takes a matplotlib ``Axes`` and never calls ``matplotlib.use``."""

__all__: list[str] = []
