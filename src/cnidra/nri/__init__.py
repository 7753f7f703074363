"""The NRI plugin: register, configure, synchronize, pod sandbox events; hands pod events to
attach.
"""
