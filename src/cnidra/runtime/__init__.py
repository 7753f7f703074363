"""Wiring: settings, guarded root tasks, ordered shutdown, health and metrics server.
"""
