"""The custom autoscaler: read the agents' own metrics, decide, write the scale subresource.

``decision`` is the rule (pure, fake-clock tested), ``metrics`` reads the runtime's
Prometheus text, ``scrape`` fetches it from the pods; the operator's autoscaler loop wires them up.
"""
