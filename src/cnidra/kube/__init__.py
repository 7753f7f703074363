"""Thin async adapter over the Kubernetes client (lightkube): auth, server-side apply, watch
caches, claim reads and the status writer. Foreign errors become cnidra.errors.
"""
