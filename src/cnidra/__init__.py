"""cnidra: a Kubernetes DRA driver for secondary pod network interfaces, built on CNI.

One privileged asyncio process per node advertises the node's interfaces as DRA devices,
prepares ResourceClaims for the kubelet, attaches interfaces with CNI plugins when containerd's
NRI reports a pod sandbox, and writes what it built into ``ResourceClaim.status.devices``.
See ``docs/`` and ARCHITECTURE.md for the data flow; each subpackage's docstring states its job.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
