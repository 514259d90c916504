"""The test suite, one folder a package of ``inspector`` (tests/fixtures: what they share)."""
