"""Routing models: escalation policies, decisions and assignments (see routing issue)."""
