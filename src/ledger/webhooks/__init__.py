"""HTTP ingress for aggregator delivery callbacks.

Each carrier connection with a ``webhook`` profile gets the route
``/hooks/<connection>``. A callback is checked with its provider's signature
scheme, recorded through the same group commit as raw receipts from gRPC, and
acknowledged only after that transaction committed. ``docs/webhooks.md``
describes the configuration and the responses.
"""
