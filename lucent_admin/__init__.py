"""Lucent Admin: the operations console for the platform's Redis read models."""
from lucent_admin.celery import app as celery_app

__all__ = ["celery_app"]
