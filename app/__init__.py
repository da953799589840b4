"""Scalpel API: the HTTP service and the job registry."""
