"""Headless defaults (quick mode, offscreen rendering) for every test and notebook kernel."""

from hmrlab.notebook_runner import apply_headless_env

apply_headless_env()
