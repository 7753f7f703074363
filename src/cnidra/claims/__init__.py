"""Prepared-claim state: attach plans computed from allocations and opaque configs (admin policy
applied), kept in a versioned, atomically written checkpoint (the single source of truth).
"""
