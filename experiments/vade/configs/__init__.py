"""Experiment configurations; each module has `get_config() -> Config`."""
