"""The test suite (a package: its helpers import as tests.conftest, whatever else is installed as `tests`)."""
