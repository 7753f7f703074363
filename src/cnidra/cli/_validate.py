"""``cnidra validate``: check DRA manifests for this driver offline, before a pod hits them.

Reads ResourceClaims, ResourceClaimTemplates and DeviceClasses (``resource.k8s.io`` v1, v1beta2
and v1beta1 shapes; multi-document YAML, JSON, ``List`` objects) and reports what the driver
would refuse in ``NodePrepareResources``: the opaque ``parameters`` schema, the CNI conflist,
``ifName`` rules (a valid Linux name, not reserved, unique within a claim) and the admin policy
(allowed plugin types, narrowed by a DeviceClass ``CNIPolicy``; macvlan/ipvlan must name their
``master``). Every finding reads ``FILE: Kind ns/name: field.path: what is wrong``.

Limits: nothing that needs the allocation is checked (whether ``master`` is the allocated
device, two claims of one pod using one ``ifName``); a DeviceClass that is not among the files
given is unknown, so what it might supply is reported as a warning, not an error. Other kinds
(Deployments, Pods, ...) are skipped. Exit 0 when clean (warnings allowed), 1 on errors, 2 when
a file cannot be read or parsed.

Reading the files and the findings are in ``_validate_docs``, the checks in ``_validate_checks``;
this module is the command (arguments, output, exit codes).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cnidra.claims import AdminPolicy
from cnidra.cli._validate_checks import Validator
from cnidra.cli._validate_docs import Document, load_documents
from cnidra.errors import ConfigError
from cnidra.runtime import Settings

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def _plugins(text: str) -> frozenset[str]:
    return frozenset(p.strip() for p in text.split(",") if p.strip())


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate", help="check ResourceClaims, templates and DeviceClasses offline",
        description="Check DRA manifests for this driver: opaque config schema, CNI conflist, "
                    "ifName rules and the admin policy. Findings read 'FILE: Kind ns/name: "
                    f"field.path: what is wrong'. Exit {EXIT_OK} when clean, {EXIT_INVALID} on "
                    f"errors, {EXIT_UNREADABLE} when a file cannot be read.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML or JSON file ('-': stdin)")
    defaults = Settings()
    parser.add_argument("--driver", default=defaults.driver_name,
                        help="driver name of the opaque configs (default: %(default)s)")
    parser.add_argument("--allowed-plugins", type=_plugins,
                        default=frozenset(defaults.allowed_plugins), metavar="TYPE,...",
                        help="the node's allowed CNI plugin types (default: the driver's: "
                             f"{','.join(defaults.allowed_plugins)})")
    parser.add_argument("--no-require-master", action="store_true",
                        help="the node runs with --require-master-is-allocated=false")
    parser.add_argument("--json", action="store_true",
                        help="print the findings as one JSON list instead of lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    docs: list[Document] = []
    unreadable = False
    for path in args.files:
        try:
            docs.extend(load_documents(path))
        except ConfigError as exc:
            sys.stderr.write(f"{exc}\n")
            unreadable = True
    policy = AdminPolicy(frozenset(args.allowed_plugins), not args.no_require_master)
    validator = Validator(args.driver, policy)
    findings = validator.run(docs)
    if args.json:
        sys.stdout.write(json.dumps([
            {"file": f.file, "kind": f.kind, "object": f.key, "path": f.path,
             "message": f.message, "severity": "warning" if f.warning else "error"}
            for f in findings], indent=2) + "\n")
    else:
        for finding in findings:
            sys.stdout.write(f"{finding}\n")
    errors = sum(not f.warning for f in findings)
    warnings = len(findings) - errors
    sys.stderr.write(f"cnidra validate: {validator.checked} objects checked, {errors} errors, "
                     f"{warnings} warnings\n")
    if unreadable:
        return EXIT_UNREADABLE
    return EXIT_INVALID if errors else EXIT_OK
