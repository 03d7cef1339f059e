"""Level-triggered reconciliation: read the whole desired state, converge the children."""
