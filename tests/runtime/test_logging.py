"""Logging: JSON lines and text carry claim/pod identifiers from the context and from extra."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator, Sequence

import pytest
from runtime.fakes import FakeClaims, FakeHandler, Journal

from cnidra.attach import Sandbox
from cnidra.errors import ConfigError
from cnidra.model.claims import ClaimRef, PrepareOutcome
from cnidra.model.plan import Attachment
from cnidra.runtime import Metrics, ObservedClaims, ObservedHandler, log_fields, setup_logging

inner = logging.getLogger("cnidra.attach.test")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    yield out
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def records(out: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_line_has_time_level_logger_message(stream: io.StringIO) -> None:
    setup_logging("info", "json", stream)
    logging.getLogger("cnidra.x").info("hello %s", "world")
    logging.getLogger("cnidra.x").debug("hidden at info")
    (rec,) = records(stream)
    assert rec["level"] == "info" and rec["logger"] == "cnidra.x"
    assert rec["message"] == "hello world"
    assert rec["time"].endswith("Z") and "T" in rec["time"]


def test_context_and_extra_fields_are_merged(stream: io.StringIO) -> None:
    setup_logging("debug", "json", stream)
    with log_fields(pod="ns/web", pod_uid="p-1"):
        inner.info("in context")
        with log_fields(claim="ns/c"):
            inner.info("nested", extra={"claim_uid": "c-1"})
    inner.info("outside")
    a, b, c = records(stream)
    assert (a["pod"], a["pod_uid"]) == ("ns/web", "p-1") and "claim" not in a
    assert (b["pod"], b["claim"], b["claim_uid"]) == ("ns/web", "ns/c", "c-1")
    assert "pod" not in c


def test_exception_is_one_line_of_json(stream: io.StringIO) -> None:
    setup_logging("info", "json", stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("cnidra.x").exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "ValueError: boom" in json.loads(lines[0])["exception"]


def test_text_format_appends_identifiers(stream: io.StringIO) -> None:
    setup_logging("info", "text", stream)
    with log_fields(claim="ns/c", claim_uid="u"):
        inner.warning("careful")
    line = stream.getvalue().strip()
    assert line.endswith("warning cnidra.attach.test: careful claim=ns/c claim_uid=u")


def test_bad_level_names_the_flag() -> None:
    with pytest.raises(ConfigError) as exc:
        setup_logging("loud", "json")
    assert exc.value.path == "log-level"


class LoggingHandler(FakeHandler):
    """An inner layer that logs, possibly from a task it spawns."""

    async def run_pod_sandbox(self, sandbox: Sandbox) -> list[Attachment]:
        async def child() -> None:
            inner.info("adding net1")
        await asyncio.create_task(child())
        return []


class LoggingClaims(FakeClaims):
    async def prepare(self, claims: Sequence[ClaimRef]) -> dict[str, PrepareOutcome]:
        inner.info("computing plan")
        return {c.uid: PrepareOutcome(error="claim team-a/bad: no") if c.name == "bad"
                else PrepareOutcome() for c in claims}


async def test_hook_and_prepare_logs_carry_ids_into_inner_layers(stream: io.StringIO) -> None:
    setup_logging("info", "json", stream)
    journal = Journal()
    handler = ObservedHandler(LoggingHandler(journal), Metrics())
    await handler.run_pod_sandbox(Sandbox("0123456789abcdef", "uid-p", "web", "team-a", "/x"))
    claims = ObservedClaims(LoggingClaims(journal), Metrics())
    await claims.prepare([ClaimRef("team-a", "net", "uid-c")])
    await claims.prepare([ClaimRef("team-a", "net", "uid-c"), ClaimRef("team-a", "bad", "u2")])
    recs = records(stream)
    child = next(r for r in recs if r["message"] == "adding net1")
    assert child["pod"] == "team-a/web" and child["pod_uid"] == "uid-p"
    assert child["sandbox"] == "0123456789ab" and child["event"] == "RunPodSandbox"
    plan = next(r for r in recs if r["message"] == "computing plan")
    assert plan["claim"] == "team-a/net" and plan["claim_uid"] == "uid-c"
    assert "pod" not in plan
    failed = next(r for r in recs if r["message"].startswith("prepare failed"))
    assert failed["claim"] == "team-a/bad" and failed["claim_uid"] == "u2"
    assert failed["claims"] == "team-a/net,team-a/bad" and failed["level"] == "warning"
