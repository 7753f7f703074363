"""The embedded node: stand-ins for kube-apiserver, kubelet, containerd and the scheduler, driving
the real driver over its real protocols. Powers 'cnidra demo' and the integration tests.
"""
