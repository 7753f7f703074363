"""The kubelet plugin: registration service and DRA gRPC services (v1, v1beta1) on unix sockets,
with our own .proto files and generated code.
"""
