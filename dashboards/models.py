"""Dashboards keep no tables of their own yet."""
