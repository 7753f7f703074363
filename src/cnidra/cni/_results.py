"""Typed CNI results (0.1.0 … 1.1.0) and conversion between versions. Pure, no I/O.

Formats: 0.1.0/0.2.0 carry ``ip4``/``ip6`` objects; 0.3.x/0.4.0 carry ``interfaces`` and ``ips``
with a ``version`` field; 1.x drops ``version``. 1.0.0 and 1.1.0 share one format (libcni's
``types/100`` handles both); the 1.1.0-only interface/route fields are kept when set. Converting
down to 0.2.0 keeps the first IPv4 and first IPv6 address, as libcni does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnidra.cni import _version
from cnidra.errors import CNIError

_RESULT_ERROR = 999


def _bad(msg: str) -> CNIError:
    return CNIError(_RESULT_ERROR, f"invalid CNI result: {msg}")


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str = ""
    mtu: int = 0
    sandbox: str = ""
    socket_path: str = ""
    pci_id: str = ""


@dataclass(frozen=True)
class IPConfig:
    address: str
    """CIDR, e.g. ``10.1.0.5/24``."""
    gateway: str = ""
    interface: int | None = None
    """Index into ``Result.interfaces`` (absent for IPAM results)."""

    @property
    def family(self) -> int:
        return ipaddress.ip_interface(self.address).version


@dataclass(frozen=True)
class Route:
    dst: str
    gw: str = ""
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int | None = None
    scope: int | None = None


@dataclass(frozen=True)
class DNS:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out


@dataclass(frozen=True)
class VersionInfo:
    """A plugin's VERSION answer."""

    cni_version: str
    supported_versions: tuple[str, ...]

    def supports(self, version: str) -> bool:
        return version in self.supported_versions


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(f"{where}.{key} must be a string")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"{where}.{key} must be an integer")
    return value


def _strs(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{where}.{key} must be a list of strings")
    return tuple(value)


def _cidr(value: str, where: str) -> str:
    try:
        ipaddress.ip_interface(value)
    except ValueError as exc:
        raise _bad(f"{where} {value!r} is not an address/prefix") from exc
    if "/" not in value:
        raise _bad(f"{where} {value!r} has no prefix length")
    return value


def _objs(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad(f"{key} must be a list of objects")
    return value


def _route(raw: Mapping[str, Any], where: str) -> Route:
    return Route(
        dst=_cidr(_str(raw, "dst", where), f"{where}.dst"), gw=_str(raw, "gw", where),
        mtu=_int(raw, "mtu", where) or 0, advmss=_int(raw, "advmss", where) or 0,
        priority=_int(raw, "priority", where) or 0, table=_int(raw, "table", where),
        scope=_int(raw, "scope", where),
    )


@dataclass(frozen=True)
class Result:
    """An ADD result, independent of the version it was read from."""

    cni_version: str
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = DNS()

    def to_dict(self, version: str | None = None) -> dict[str, Any]:
        """This result in the wire format of ``version`` (default: its own)."""
        version = version or self.cni_version
        if version not in _version.SUPPORTED_VERSIONS:
            raise _bad(f"cannot convert to unknown version {version!r}")
        if _version.at_least(version, "0.3.0"):
            return self._to_current(version)
        return self._to_legacy(version)

    def with_version(self, version: str) -> Result:
        return Result(version, self.interfaces, self.ips, self.routes, self.dns)

    def _to_current(self, version: str) -> dict[str, Any]:
        modern = _version.at_least(version, "1.0.0")
        out: dict[str, Any] = {"cniVersion": version}
        if self.interfaces:
            out["interfaces"] = [_iface_dict(i, modern) for i in self.interfaces]
        if self.ips:
            out["ips"] = [_ip_dict(ip, modern) for ip in self.ips]
        if self.routes:
            out["routes"] = [_route_dict(r) for r in self.routes]
        out["dns"] = self.dns.to_dict()
        return out

    def _to_legacy(self, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version}
        for family, key in ((4, "ip4"), (6, "ip6")):
            first = next((ip for ip in self.ips if ip.family == family), None)
            if first is None:
                continue
            block: dict[str, Any] = {"ip": first.address}
            if first.gateway:
                block["gateway"] = first.gateway
            routes = [
                _route_dict(Route(r.dst, r.gw)) for r in self.routes
                if ipaddress.ip_network(r.dst, strict=False).version == family
            ]
            if routes:
                block["routes"] = routes
            out[key] = block
        out["dns"] = self.dns.to_dict()
        return out


def _iface_dict(iface: Interface, modern: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": iface.name}
    if iface.mac:
        out["mac"] = iface.mac
    if modern and iface.mtu:
        out["mtu"] = iface.mtu
    if iface.sandbox:
        out["sandbox"] = iface.sandbox
    if modern and iface.socket_path:
        out["socketPath"] = iface.socket_path
    if modern and iface.pci_id:
        out["pciID"] = iface.pci_id
    return out


def _ip_dict(ip: IPConfig, modern: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not modern:
        out["version"] = str(ip.family)
    if ip.interface is not None:
        out["interface"] = ip.interface
    out["address"] = ip.address
    if ip.gateway:
        out["gateway"] = ip.gateway
    return out


def _route_dict(route: Route) -> dict[str, Any]:
    out: dict[str, Any] = {"dst": route.dst}
    if route.gw:
        out["gw"] = route.gw
    for key, value in (("mtu", route.mtu), ("advmss", route.advmss), ("priority", route.priority)):
        if value:
            out[key] = value
    if route.table is not None:
        out["table"] = route.table
    if route.scope is not None:
        out["scope"] = route.scope
    return out


def _dns(raw: Any) -> DNS:
    if raw is None:
        return DNS()
    if not isinstance(raw, dict):
        raise _bad("dns must be an object")
    return DNS(
        nameservers=_strs(raw, "nameservers", "dns"), domain=_str(raw, "domain", "dns"),
        search=_strs(raw, "search", "dns"), options=_strs(raw, "options", "dns"),
    )


def parse_result(raw: Mapping[str, Any], default_version: str = "") -> Result:
    """Parse an ADD result of any supported version (``cniVersion`` inside wins)."""
    if not isinstance(raw, Mapping):
        raise _bad("must be a JSON object")
    version = raw.get("cniVersion") or default_version
    if not isinstance(version, str) or version not in _version.SUPPORTED_VERSIONS:
        raise _bad(f"unsupported cniVersion {version!r}")
    if not _version.at_least(version, "0.3.0"):
        return _parse_legacy(raw, version)
    interfaces = tuple(
        Interface(
            name=_str(i, "name", f"interfaces[{n}]"), mac=_str(i, "mac", f"interfaces[{n}]"),
            mtu=_int(i, "mtu", f"interfaces[{n}]") or 0,
            sandbox=_str(i, "sandbox", f"interfaces[{n}]"),
            socket_path=_str(i, "socketPath", f"interfaces[{n}]"),
            pci_id=_str(i, "pciID", f"interfaces[{n}]"),
        )
        for n, i in enumerate(_objs(raw, "interfaces"))
    )
    ips = []
    for n, ip in enumerate(_objs(raw, "ips")):
        where = f"ips[{n}]"
        index = _int(ip, "interface", where)
        if index is not None and not 0 <= index < len(interfaces):
            raise _bad(f"{where}.interface {index} is not an index into interfaces")
        ips.append(IPConfig(
            address=_cidr(_str(ip, "address", where), f"{where}.address"),
            gateway=_str(ip, "gateway", where), interface=index,
        ))
    routes = tuple(_route(r, f"routes[{n}]") for n, r in enumerate(_objs(raw, "routes")))
    return Result(version, interfaces, tuple(ips), routes, _dns(raw.get("dns")))


def _parse_legacy(raw: Mapping[str, Any], version: str) -> Result:
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for key in ("ip4", "ip6"):
        block = raw.get(key)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise _bad(f"{key} must be an object")
        address = _cidr(_str(block, "ip", key), f"{key}.ip")
        ips.append(IPConfig(address, _str(block, "gateway", key)))
        routes.extend(
            _route(r, f"{key}.routes[{n}]") for n, r in enumerate(_objs(block, "routes"))
        )
    return Result(version, (), tuple(ips), tuple(routes), _dns(raw.get("dns")))


def parse_version_info(raw: Any) -> VersionInfo:
    """A VERSION answer; a plugin too old to say ``supportedVersions`` speaks only 0.1.0."""
    if not isinstance(raw, dict):
        raise _bad("VERSION output must be a JSON object")
    versions = raw.get("supportedVersions")
    if versions is None:
        versions = ["0.1.0"]
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise _bad("supportedVersions must be a list of strings")
    cni_version = raw.get("cniVersion", "0.1.0")
    if not isinstance(cni_version, str):
        raise _bad("cniVersion must be a string")
    return VersionInfo(cni_version, tuple(versions))
