"""Where the operator leans on a dependency's behaviour that its public API does not
promise, one module per library, each with contract tests that fail when the library
stops behaving so (`tests/unit/test_compat_kopf.py`)."""
