"""Factories that build test objects in code (no fixture files)."""
