"""`python -m atomic_operator`: run the operator (standalone; see docs/operations.md)."""

from atomic_operator.cli.operator_run import main

if __name__ == "__main__":
    raise SystemExit(main())
