"""Lucent's projection engine: the event catalog, pure read-model folds, the Redis writer and
read side, the operator commands, the projector and the simulated market.

Framework-free: nothing in this package imports Django.
"""
