"""Lucent's projection engine: event catalog, pure read-model folds, Redis writer.

Framework-free: nothing in this package imports Django.
"""
