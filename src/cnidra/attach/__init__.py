"""Per-pod orchestration of CNI ADD/DEL in pod network namespaces; claim status reporting.
"""
