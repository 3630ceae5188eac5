"""hmrlab's benchmarks: scripts that print figures, not tests (``python -m benchmarks`` runs them all)."""
