"""``cnidra inspect``: the node's prepared claims and attachments, read from the checkpoint.

Strictly read-only: the file is read with ``Checkpoint.load_stamped(clean=False)``, never
through :meth:`cnidra.claims.Checkpoint.load`, which also tidies up temp files. Shows per
attachment the pod UID, claim, pod interface, IPs and MAC (from the CNI result), the device
and since when; prepared claims that no pod uses yet are listed too.

``--node NAME`` picks ``<state dir>/NAME`` (or ``<state dir>/NAME/state``) when the state
directory holds one directory per node, as the embedded demo does; the checkpoint itself does
not record the node. Exit 0 on success, 1 when there is no checkpoint yet, 2 when it cannot be
read or decoded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnidra.claims import Checkpoint, PreparedClaim
from cnidra.errors import CheckpointError
from cnidra.model.plan import Attachment, PlannedInterface

EXIT_OK = 0
EXIT_MISSING = 1
EXIT_UNREADABLE = 2
DEFAULT_STATE_DIR = "/var/lib/cnidra"


def checkpoint_path(state_dir: str, node: str = "") -> Path:
    """Where the checkpoint of ``node`` is under ``state_dir``."""
    base = Path(state_dir)
    if node and not Checkpoint(base).path.exists():
        for candidate in (base / node, base / node / "state"):
            if Checkpoint(candidate).path.exists():
                return Checkpoint(candidate).path
    return Checkpoint(base).path


def read_checkpoint(path: Path) -> dict[str, PreparedClaim]:
    """Decode the checkpoint at ``path`` without touching anything on disk (the checkpoint's
    own reader, without the temp-file clean-up of ``Checkpoint.load``).

    Raises ``FileNotFoundError`` when it does not exist and ``CheckpointError`` when it
    cannot be read or decoded.
    """
    claims, stamp = Checkpoint(path.parent).load_stamped(clean=False)
    if stamp is None:
        raise FileNotFoundError(path)
    return claims


def _result_ips(result: Mapping[str, Any]) -> list[str]:
    return [str(ip.get("address")) for ip in result.get("ips") or () if isinstance(ip, Mapping)
            and ip.get("address")]


def _result_mac(result: Mapping[str, Any], if_name: str) -> str:
    interfaces = [i for i in result.get("interfaces") or () if isinstance(i, Mapping)]
    inside = [i for i in interfaces if i.get("sandbox")]
    for itf in [*(i for i in inside if i.get("name") == if_name), *inside, *interfaces]:
        if itf.get("mac"):
            return str(itf["mac"])
    return ""


def _since(seconds: float) -> str:
    if seconds <= 0:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(claims: Mapping[str, PreparedClaim]) -> list[dict[str, Any]]:
    """One row per attachment, plus one per planned interface without an attachment."""
    out: list[dict[str, Any]] = []
    for uid, prepared in sorted(claims.items(), key=lambda kv: kv[1].plan.key):
        plan = prepared.plan
        by_if: dict[str, list[Attachment]] = {}
        for att in prepared.attachments:
            by_if.setdefault(att.if_name, []).append(att)
        for itf in plan.interfaces:
            base = _interface_row(uid, plan.key, itf)
            attached = sorted(by_if.pop(itf.if_name, []), key=lambda a: (a.since, a.pod_uid))
            if not attached:
                out.append(base | {"state": "prepared", "podUID": "", "sandboxID": "",
                                   "ips": [], "mac": "", "since": "", "statusReported": False,
                                   "podUIDs": list(plan.pod_uids)})
            out.extend(base | _attachment_row(att) for att in attached)
        for if_name, orphans in sorted(by_if.items()):  # attachment without a planned interface
            out.extend({"claim": plan.key, "claimUID": uid, "ifName": if_name, "request": "",
                        "device": "", "pool": "", "network": a.network_name, "shareID": None}
                       | _attachment_row(a) for a in orphans)
    return out


def _interface_row(uid: str, key: str, itf: PlannedInterface) -> dict[str, Any]:
    return {"claim": key, "claimUID": uid, "ifName": itf.if_name, "request": itf.request,
            "device": f"{itf.pool}/{itf.device}", "pool": itf.pool, "network": itf.network_name,
            "shareID": itf.share_id}


def _attachment_row(att: Attachment) -> dict[str, Any]:
    return {"state": "attached", "podUID": att.pod_uid, "sandboxID": att.sandbox_id,
            "netns": att.netns, "ips": _result_ips(att.cni_result),
            "mac": _result_mac(att.cni_result, att.if_name), "since": _since(att.since),
            "statusReported": att.status_reported}


_COLUMNS = (("POD UID", "podUID"), ("CLAIM", "claim"), ("IFNAME", "ifName"), ("IPS", "ips"),
            ("MAC", "mac"), ("DEVICE", "device"), ("STATE", "state"), ("SINCE", "since"))


def table(items: Sequence[Mapping[str, Any]]) -> list[str]:
    cells = [[h for h, _ in _COLUMNS]]
    for row in items:
        cells.append([",".join(row[k]) if isinstance(row[k], list) else str(row[k] or "-")
                      for _, k in _COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect", help="show this node's prepared claims and attachments (read-only)",
        description="Read the driver's checkpoint and list every attachment: pod, claim, "
                    "interface, IPs, MAC, device and since when. Never writes anything.",
    )
    parser.add_argument("--state-dir", default=os.environ.get("CNIDRA_STATE_DIR",
                                                              DEFAULT_STATE_DIR),
                        metavar="DIR", help="the driver's --state-dir (default: %(default)s)")
    parser.add_argument("--node", default="", metavar="NAME",
                        help="pick DIR/NAME when DIR holds one state directory per node")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = checkpoint_path(args.state_dir, args.node)
    try:
        claims = read_checkpoint(path)
    except FileNotFoundError:
        sys.stderr.write(f"cnidra inspect: no checkpoint at {path}: the driver has not "
                         "prepared a claim on this node yet, or --state-dir/--node point "
                         "elsewhere\n")
        return EXIT_MISSING
    except CheckpointError as exc:
        sys.stderr.write(f"cnidra inspect: {exc}\n")
        return EXIT_UNREADABLE
    items = rows(claims)
    if args.json:
        sys.stdout.write(json.dumps({"checkpoint": str(path), "node": args.node,
                                     "claims": len(claims), "interfaces": items},
                                    indent=2) + "\n")
        return EXIT_OK
    attached = sum(r["state"] == "attached" for r in items)
    node = f" on node {args.node}" if args.node else ""
    sys.stdout.write(f"{path}{node}: {len(claims)} prepared claims, {attached} attachments\n")
    if items:
        sys.stdout.write("\n".join(table(items)) + "\n")
    return EXIT_OK
