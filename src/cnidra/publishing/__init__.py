"""Inventory snapshot -> ResourceSlices for this node's pool (v1, or v1beta1 on 1.32-1.33
clusters); writes only on change.
"""
