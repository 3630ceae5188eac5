"""Offline tools of the repository, outside the installed package: the free body model builder, the
fixtures writer and the notebook runner (`python -m tools.<name>` from the repository root)."""
