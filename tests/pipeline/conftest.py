"""Markers for the pipeline tests: ``slow`` marks end-to-end runs of the real pipeline (deselect with -m 'not slow')."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end run of the default pipeline (over a minute)")
