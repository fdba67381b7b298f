"""MemoryError where a tight heap meets it, injected so that each case is deterministic
(tests/device/dev_memerr.py on the unix port, littlefs images, a real mosquitto): a
backlog's segment reads failing while it drains (the blocking client's drain stalled for
good once nothing was in flight; the asyncio reader ended, and its keeper with it), an
incoming QoS 2 record or release the heap could not write (the RAM record kept what flash
did not: the resend was taken for a duplicate and never delivered), and a seal of the tail
cut between the appends of its index (the index arrays fell out of step and messages were
lost), and an incoming QoS 1/2 message whose copy for the callback or messages() found no
heap (acknowledged, even recorded as a QoS 2 duplicate, and never delivered); a
coroutine handler's coroutine, the asyncio reader's list of them or its runner of them
without heap (answered unhandled, or the reader ended), and link failures for want of heap
counted as strikes against a subscription (given up as refused). Found by hunts in heaps
just big enough; each case fails without its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device
from hostile import CONNECT, PUBLISH, SUBSCRIBE, Script, connack, packet
from test_guard import AckingBroker, SubackingBroker


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


@pytest.mark.parametrize("fail", ["call", "grow", "runner"])
@pytest.mark.parametrize("qos", [1, 2])
def test_coroutine_handler_without_heap_gets_its_message_again(
        broker: Broker, tmp_path: Path, fail: str, qos: int) -> None:
    # no heap for a coroutine handler's coroutine (the call that makes it) or for the
    # reader's list of them: the message was answered unhandled and lost; or for the
    # reader's runner of them: the reader ended (a hunt at 14 KB free,
    # tests/host/test_rx_short_heap.py)
    c = {"HOST": broker.host, "PORT": broker.port, "TEST": "handler", "API": "aio",
         "QOS": qos, "FAIL": fail, "PREFIX": f"memcoro-{tmp_path.name}",
         "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 256}
    r = run_device("dev_memerr.py", c, heap="256k", timeout=120)
    assert "PASS" in r.out, r.out


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_link_failures_for_want_of_heap_are_no_strike_against_a_subscription(
        api: str) -> None:
    # the broker lost the session: the subscription is made again; before its SUBACK, a
    # large message finds no heap for its copy (ENOBUFS), three connections in a row
    # (strikes=3). Counted as strikes, it was given up as refused (a hunt at 14 KB
    # free, tests/host/test_rx_short_heap.py; the asyncio reader then ended, its write
    # failing for want of heap too)
    big = packet(PUBLISH, b"\x00\x03t/a" + bytes(6000))
    strike: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", SUBSCRIBE),
                      ("send", big), ("sleep", 5)]
    made: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", SUBSCRIBE),
                    ("suback", 4), ("sleep", 10)]
    with SubackingBroker([strike, strike, strike, made]) as b:
        c = {"HOST": b.host, "PORT": b.port, "TEST": "substrike", "API": api}
        r = run_device("dev_memerr.py", c, heap="256k", timeout=120)
        assert len(b.conns) == 4, r.out
    assert "PASS" in r.out, r.out
