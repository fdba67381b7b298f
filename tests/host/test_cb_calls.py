"""Calls into the client from its own message callback, on the unix port against
mosquitto, with a burst of 40 QoS 1 commands that arrive together (they waited at the
broker while the node was offline): a reply published from the callback (QoS 1 and 2,
window 1 and 16), a subscription made from it, and disconnect() from it on a "stop"
command (both clients), check_msg() from it (refused: RuntimeError); and a
disconnect() with a window of 40 in flight (both clients). Up to 0.2.19 the blocking
client's publish and subscribe there waited for their acknowledgement by reading input,
which handed the callback the next command before it returned, and so on until
MicroPython's recursion limit (RuntimeError); disconnect() from a callback left that
command unacknowledged (the broker sent it again on the next connect, so a node that
stops on a command stopped at every connect) and the client went on handing out the
commands read with it; and disconnect() closed with the broker's acknowledgements
unread, so the kernel reset the connection and the broker dropped what it had not read
yet (the last messages and the DISCONNECT: it sent the will)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device

HEAP = "256k"
N = 40


def run(broker: Broker, tmp_path: Path, test: str, **kw: object) -> dict[str, list[str]]:
    cfg = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "TEST": test,
           "PREFIX": f"cb-{tmp_path.name}", "CID": f"cb-{tmp_path.name}"[-20:], **kw}
    r = run_device("dev_cb_calls.py", cfg, heap=HEAP, timeout=120)
    assert "RAISED" not in r.out, r.out
    return {line.split()[0]: line.split()[1:] for line in r.out.splitlines() if line.strip()}


@pytest.mark.parametrize("qos,window", [(1, 1), (2, 1), (1, 16)])
def test_replies_published_from_the_callback_all_arrive(broker: Broker, tmp_path: Path,
                                                        qos: int, window: int) -> None:
    got = run(broker, tmp_path, "reply", REPLY_QOS=qos, WINDOW=window)
    assert got["CMDS"] == [str(N), str(N)], got
    assert got["REPLIES"] == [str(N), str(N)], got
    assert got["PENDING"] == ["0"], got


def test_subscriptions_made_from_the_callback_hold(broker: Broker, tmp_path: Path) -> None:
    got = run(broker, tmp_path, "sub")
    assert got["CMDS"] == [str(N), str(N)], got
    assert got["HEARD"] == [str(N), str(N)], got


def test_disconnect_from_a_messages_consumer_answers_its_command(broker: Broker,
                                                                 tmp_path: Path) -> None:
    got = run(broker, tmp_path, "consumer", API="aio")
    assert got["FIRST"] == [str(i) for i in range(6)] + ["True"], got
    # the acknowledgement of a message in flight could not be read (the reader waited for
    # room in messages()): the disconnect did not wait its timeout for it
    assert got["EARLY"] == ["True"], got
    assert got["SECOND"] == [str(i) for i in range(6, N)], got


def test_check_msg_from_the_callback_is_refused(broker: Broker, tmp_path: Path) -> None:
    got = run(broker, tmp_path, "nested")
    # a clear error (RuntimeError, not an OSError: the link stays up)
    assert got["NESTED"] == ["check_msg()_and_wait_msg()_cannot_run_inside_the_callback",
                             "True"], got


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_disconnect_with_a_window_in_flight_loses_nothing(broker: Broker, tmp_path: Path,
                                                          api: str) -> None:
    got = run(broker, tmp_path, "flight", API=api)
    assert got["HEARD"] == [str(N), str(N)], got
    assert got["WILL"] == ["0"], got  # a clean disconnect: the broker sent no will
    assert got["PENDING"] == ["0"], got  # their acknowledgements were read first


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_disconnect_from_the_callback_answers_its_command(broker: Broker, tmp_path: Path,
                                                         api: str) -> None:
    got = run(broker, tmp_path, "bye", API=api)
    # the first connection ends at "stop" (5), closed; nothing after it was handed out
    assert got["FIRST"] == [str(i) for i in range(6)] + ["True"], got
    # the next one gets the rest, and "5" was answered: not sent again
    assert got["SECOND"] == [str(i) for i in range(6, N)], got
