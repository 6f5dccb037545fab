"""Continuous integration: the GitHub Actions matrix and workflow, generated from targets/."""
