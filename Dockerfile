# cnidra driver image: `docker build -t cnidra:0.1.0 .`
#
# Debian bookworm, like CI: its containernetworking-plugins (1.1.1, in /usr/lib/cni) are the
# plugins the tests run for real. The driver searches /opt/cni/bin first (the chart can mount
# the node's plugins there), then /usr/lib/cni.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends containernetworking-plugins \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && rm -rf /src
WORKDIR /

# Privileges: the driver runs as root in the node's network namespace (hostNetwork) with only
#   NET_ADMIN  links, addresses and routes over netlink; the CNI plugins it executes (macvlan,
#              ipvlan, bridge, tuning...) create links in the host namespace and move them into
#              the pod's;
#   SYS_ADMIN  setns(2) into a pod's network namespace (attach's netns threads, and every CNI
#              plugin does the same); the runtime's default seccomp profile allows setns only
#              with this capability.
# Not needed: SYS_PTRACE and hostPID (containerd hands over pod namespaces as nsfs mounts under
# /var/run/netns, never /proc/<pid>/ns paths), NET_RAW (no raw sockets; the dhcp plugin's raw
# sockets live in its own daemon, which this image does not run).
# Non-root cannot work: setns needs CAP_SYS_ADMIN in the effective set, and Kubernetes gives a
# non-root container no ambient capabilities, so the capabilities would be lost at the first
# execve of a CNI plugin; the kubelet's plugin directories, /var/run/netns and host-local's
# /var/lib/cni are root-owned on the node too.
# /proc/sys is read-only without privileged: plugins that write sysctls (tuning's "sysctl",
# bridge's isGateway forwarding) need the chart's `privileged: true`.
USER 0:0

ENTRYPOINT ["cnidra", "driver"]
