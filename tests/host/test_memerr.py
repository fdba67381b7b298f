"""MemoryError where a tight heap meets it, injected so that each case is deterministic
(tests/device/dev_memerr.py on the unix port, littlefs images, a real mosquitto): a
backlog's segment reads failing while it drains (the blocking client's drain stalled for
good once nothing was in flight; the asyncio reader ended, and its keeper with it), an
incoming QoS 2 record or release the heap could not write (the RAM record kept what flash
did not: the resend was taken for a duplicate and never delivered), and a seal of the tail
cut between the appends of its index (the index arrays fell out of step and messages were
lost), and an incoming QoS 1/2 message whose copy for the callback or messages() found no
heap (acknowledged, even recorded as a QoS 2 duplicate, and never delivered). Found by
hunts in heaps just big enough; each case fails without its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device
from hostile import CONNECT, PUBLISH, Script, connack, packet
from test_guard import AckingBroker


@pytest.mark.parametrize(("test", "api"), [("drain", "blocking"), ("drain", "aio"),
                                           ("rx2", "blocking"), ("seal", "blocking")])
def test_memory_error_loses_and_wedges_nothing(broker: Broker, tmp_path: Path, test: str,
                                               api: str) -> None:
    c = {"HOST": broker.host, "PORT": broker.port, "TEST": test, "API": api,
         "PREFIX": f"memerr-{tmp_path.name}", "IMAGE": str(tmp_path / "flash.img"),
         "BLOCKS": 256}
    r = run_device("dev_memerr.py", c, heap="256k", timeout=120)
    assert "PASS" in r.out, r.out


@pytest.mark.parametrize("at", [1, 2, 8, 17, 18, 19])
def test_acknowledgement_whose_write_finds_no_heap_comes_again(broker: Broker, tmp_path: Path,
                                                                 at: int) -> None:
    # the blocking client raised the MemoryError out of check_msg() with the link up: the
    # write was taken back, the acknowledgement consumed (or the pump's batch of PUBLISHes
    # left unwritten), and the message stayed in flight until the link dropped for another
    # reason: on a healthy link, for good (tests/device/dev_memerr.py, ack)
    c = {"HOST": broker.host, "PORT": broker.port, "TEST": "ack", "API": "blocking",
         "AT": at, "PREFIX": f"memack-{tmp_path.name}", "IMAGE": str(tmp_path / "flash.img"),
         "BLOCKS": 256}
    r = run_device("dev_memerr.py", c, heap="256k", timeout=120)
    assert "PASS" in r.out, r.out


@pytest.mark.parametrize(("api", "how"), [("blocking", "keeper"), ("blocking", "none"),
                                          ("aio", "cb"), ("aio", "iter")])
@pytest.mark.parametrize("qos", [1, 2])
def test_incoming_message_whose_copy_finds_no_heap_comes_again(
        broker: Broker, tmp_path: Path, api: str, how: str, qos: int) -> None:
    c = {"HOST": broker.host, "PORT": broker.port, "TEST": "copy", "API": api, "QOS": qos,
         "LINK": how == "keeper", "MODE": how, "PREFIX": f"memcopy-{tmp_path.name}",
         "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 256}
    r = run_device("dev_memerr.py", c, heap="256k", timeout=120)
    assert "PASS" in r.out, r.out


def test_incoming_message_without_heap_is_no_strike_against_the_node_s_own() -> None:
    # the node's QoS 1 message in flight; the broker's large QoS 1 message finds no heap
    # for its copy: the link goes (ENOBUFS in link.last_error), the node's message is not
    # set aside (strikes=1), both go through on the next connection
    big = packet(PUBLISH | 2, b"\x00\x03t/b\x00\x09" + bytes(6000))
    first: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                     ("send", big), ("sleep", 5)]
    again: Script = [("expect", CONNECT), ("send", connack(1)), ("expect", PUBLISH),
                     ("puback", b""), ("send", big), ("sleep", 5)]
    with AckingBroker([first, again]) as b:
        c = {"HOST": b.host, "PORT": b.port, "TEST": "copy_strike", "API": "blocking"}
        r = run_device("dev_memerr.py", c, heap="256k", timeout=120)
    assert "PASS" in r.out, r.out
    assert r.value("LAST") == "105", r.out
