"""Data: synthetic humans written in real dataset formats, and the loaders that read both."""
