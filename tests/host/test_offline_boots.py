"""A node that boots offline and reboots offline several times before the broker appears
(tests/device/dev_offline_boots.py), both clients, with a store on a littlefs image: each
offline boot subscribes, unsubscribes and publishes QoS 0/1/2; when the broker (a real
mosquitto on a port chosen before) comes up, every QoS 1/2 message accepted reaches it,
in order and QoS 2 exactly once, QoS 0 ones are counted in lost0, and the broker has the
subscriptions the offline boots left."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, Observer, publish, run_device, start_device

HEAP = "256k"


def boot(cfg: dict, wd: Path, n: int, last: int, **kw: object):
    return run_device("dev_offline_boots.py", {**cfg, "BOOT": n, "LAST": last, **kw},
                      heap=HEAP, timeout=120, workdir=wd)


@pytest.mark.slow  # (coverage that passed before: behind --runslow, for make test's time)
@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("aio", [0, 1])
@pytest.mark.parametrize("cid", [None, "fixed-id"])
def test_offline_boots_then_the_broker_appears(tmp_path: Path, aio: int, cid: str | None,
                                               version: int) -> None:
    b = Broker(tmp_path / "broker", persistence=True, start=False)
    wd = tmp_path / "dev"
    wd.mkdir()
    pre = f"ob-{tmp_path.name}"[-20:]
    cfg = {"HOST": b.host, "PORT": b.port, "VERSION": version, "PREFIX": pre, "AIO": aio,
           "IMAGE": str(wd / "flash.img"), "CID": cid, "QUEUE": 32}
    try:
        accepted, cids = [], []
        for n in (1, 2, 3):
            r = boot(cfg, wd, n, 4)
            accepted += r.value("ACCEPTED").split()
            cids.append(r.value("CID"))
            assert r.value("ERRS") == "", r.out
        b.start()
        with Observer(b.host, b.port, f"{pre}/r", qos=2) as obs:
            dev = start_device("dev_offline_boots.py", {**cfg, "BOOT": 4, "LAST": 4},
                               heap=HEAP, workdir=wd)
            try:
                dev.wait_for("READY", timeout=90)
                for t in ("s1", "s2", "s3"):
                    publish(b.host, b.port, f"{pre}/{t}", t, qos=1)
                (wd / "go").write_text("")
                r = dev.result(timeout=90)
            finally:
                dev.close()
            got = [m.payload.decode().split()[0] for m in obs.wait_for(len(accepted), timeout=30)]
        cids.append(r.value("CID"))
        assert len(set(cids)) == 1, cids
        if cid:
            assert cids[0] == cid
        assert r.value("SUBS") == f"{pre}/s3", r.out
        assert r.value("GOT") == f"{pre}/s3", r.out
        q2 = [m for m in got if "-q2-" in m]
        assert len(q2) == len(set(q2)), got  # QoS 2 exactly once
        assert sorted(set(got)) == sorted(accepted), (got, accepted)
        for q in ("-q1-", "-q2-"):
            # in the order accepted (per QoS: the observer gets a QoS 2 message at its
            # PUBREL, so across QoS levels its order is not the wire's)
            firsts = [m for m in dict.fromkeys(got) if q in m]
            assert firsts == [m for m in accepted if q in m], (got, accepted)
    finally:
        b.close()


@pytest.mark.slow  # (coverage that passed before: behind --runslow, for make test's time)
@pytest.mark.parametrize("aio", [0, 1])
@pytest.mark.parametrize("full", ["error", "drop_oldest"])
@pytest.mark.parametrize("bound", ["queue", "max_bytes"])
def test_offline_boots_fill_the_queue(tmp_path: Path, aio: int, full: str,
                                      bound: str) -> None:
    # the queue bound (queue= or max_bytes=) reached across offline boots: "error" refuses
    # (ENOBUFS, ENOSPC) and keeps everything accepted; "drop_oldest" gives up the oldest,
    # counted in dropped: what reaches the broker is every accepted message but those,
    # the newest in the order accepted
    b = Broker(tmp_path / "broker", persistence=True, start=False)
    wd = tmp_path / "dev"
    wd.mkdir()
    pre = f"oq-{tmp_path.name}"[-20:]
    cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "PREFIX": pre, "AIO": aio,
           "IMAGE": str(wd / "flash.img"), "CID": "qfill", "FULL": full,
           "QUEUE": 5 if bound == "queue" else 64, "N": 2,
           "MAX_BYTES": 8192 if bound == "max_bytes" else None,
           "PAD": 700 if bound == "max_bytes" else 0}
    try:
        accepted, refused, dropped = [], [], 0
        for n in (1, 2, 3):
            r = boot(cfg, wd, n, 4)
            accepted += r.value("ACCEPTED").split()
            refused += r.value("ERRS").split()
            dropped += int(r.values("PENDING")[0][2])
        b.start()
        (wd / "go").write_text("")
        with Observer(b.host, b.port, f"{pre}/r", qos=2) as obs:
            r = boot(cfg, wd, 4, 4, EXPECT=0)
            dropped += int(r.values("PENDING")[0][2])
            want = len(accepted) - dropped
            got = [m.payload.decode().split()[0] for m in obs.wait_for(want, timeout=30)]
        if full == "error":
            assert dropped == 0
            assert refused, r.out  # the bound was reached
        else:
            assert not refused, refused
        got = list(dict.fromkeys(got))
        for q in ("-q1-", "-q2-"):
            assert [m for m in got if q in m] == [m for m in accepted[len(accepted) - want:]
                                                  if q in m], (got, accepted, dropped)
    finally:
        b.close()


@pytest.mark.parametrize("aio", [0, 1])
def test_null_session_offline_boots_keep_what_was_accepted(tmp_path: Path, aio: int) -> None:
    # MQTT 5, client_id "": a null session that boots offline, twice, publishing QoS 1/2
    # with a keeper and a store, then finds the broker: everything it published goes out
    # under the assigned ID
    b = Broker(tmp_path / "broker", persistence=True, start=False)
    wd = tmp_path / "dev"
    wd.mkdir()
    pre = f"on-{tmp_path.name}"[-20:]
    cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 5, "PREFIX": pre, "AIO": aio,
           "IMAGE": str(wd / "flash.img"), "LAST": 3}
    try:
        accepted = []
        for n in (1, 2):
            r = run_device("dev_null_offline.py", {**cfg, "BOOT": n}, heap=HEAP, timeout=120,
                           workdir=wd)
            accepted += [v[0] for v in r.values("ACCEPTED")]
            # offline with a keeper, QoS 1/2 queue (in flash with a store): README
            # "Offline", API.md. A null session raises OSError(ENOTCONN, "null session:
            # connect first"), which the README does not say
            assert not r.values("REFUSED"), r.out
        b.start()
        with Observer(b.host, b.port, f"{pre}/r", qos=2) as obs:
            r = run_device("dev_null_offline.py", {**cfg, "BOOT": 3}, heap=HEAP, timeout=120,
                           workdir=wd)
            assert r.value("HELD") == str(len(accepted)), r.out
            got = [m.payload.decode() for m in obs.wait_for(len(accepted), timeout=30)]
        assert sorted(set(got)) == sorted(accepted), (got, r.out)
    finally:
        b.close()


@pytest.mark.slow  # (coverage that passed before: behind --runslow, for make test's time)
@pytest.mark.parametrize("aio", [0, 1])
def test_offline_boots_change_what_the_broker_kept(tmp_path: Path, aio: int) -> None:
    # the broker keeps the node's session (persistence) while the node, offline, reboots
    # and changes its subscriptions: the resumed connect (Session Present 1) makes them,
    # and the last change to a filter wins
    b = Broker(tmp_path / "broker", persistence=True)
    wd = tmp_path / "dev"
    wd.mkdir()
    pre = f"os-{tmp_path.name}"[-20:]
    cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "PREFIX": pre, "AIO": aio,
           "IMAGE": str(wd / "flash.img")}

    def run(**kw: object) -> str:
        r = run_device("dev_offline_subs.py", {**cfg, **kw}, heap=HEAP, timeout=120,
                       workdir=wd)
        return r.value("SUBS")

    try:
        run(ONLINE=1, OPS="sa1 sb1 sc1", WAITGO=0)
        b.stop()
        run(OPS="ua sd1 uc")
        run(OPS="sa2 ua sc1 ud")
        subs = run(OPS="se1 ue")
        assert subs == f"{pre}/b:1 {pre}/c:1", subs
        b.start()
        dev = start_device("dev_offline_subs.py", {**cfg, "ONLINE": 1, "EXPECT": 2},
                           heap=HEAP, workdir=wd)
        try:
            dev.wait_for("READY", timeout=90)
            for t in "abcde":
                publish(b.host, b.port, f"{pre}/{t}", t, qos=1)
            (wd / "go").write_text("")
            r = dev.result(timeout=90)
        finally:
            dev.close()
        assert r.value("GOT") == "b:b c:c", r.out
    finally:
        b.close()


@pytest.mark.slow  # (coverage that passed before: behind --runslow, for make test's time)
def test_offline_boots_store_without_a_keeper(tmp_path: Path) -> None:
    # a store and no keeper (README "The queue": what the example nodes do on a wake
    # without Wi-Fi): connect() raises offline, publish stores QoS 1/2 instead of raising,
    # and the connect(clean_session=False) of the boot that finds the broker sends it all
    b = Broker(tmp_path / "broker", persistence=True, start=False)
    wd = tmp_path / "dev"
    wd.mkdir()
    pre = f"ok-{tmp_path.name}"[-20:]
    cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "PREFIX": pre, "LINK": 0,
           "IMAGE": str(wd / "flash.img"), "CID": None, "QUEUE": 32, "EXPECT": 0}
    try:
        accepted = []
        for n in (1, 2, 3):
            r = boot(cfg, wd, n, 4)
            accepted += r.value("ACCEPTED").split()
            assert r.value("ERRS") == "", r.out
        b.start()
        (wd / "go").write_text("")
        with Observer(b.host, b.port, f"{pre}/r", qos=2) as obs:
            r = boot(cfg, wd, 4, 4)
            got = [m.payload.decode().split()[0]
                   for m in obs.wait_for(len(accepted), timeout=30)]
        assert sorted(set(got)) == sorted(accepted), (got, accepted)
        q2 = [m for m in got if "-q2-" in m]
        assert len(q2) == len(set(q2)), got
    finally:
        b.close()


@pytest.mark.slow  # (coverage that passed before: behind --runslow, for make test's time)
@pytest.mark.parametrize("aio", [0, 1])
@pytest.mark.parametrize("link", [0, 1])
def test_boot_with_the_broker_out_of_reach(tmp_path: Path, aio: int, link: int) -> None:
    # a listener that accepts and never answers: with a keeper connect returns None (the
    # keeper's last_error an OSError) and publish queues; without one connect raises
    # OSError. Every call ends (the run is bounded). (No host name that does not resolve:
    # its lookup would leave the loopback for the machine's name server)
    import socket

    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    try:
        host, port = lst.getsockname()
        cfg = {"HOST": host, "PORT": port, "VERSION": 4, "PREFIX": "ur", "AIO": aio,
               "LINK": link, "IMAGE": str(tmp_path / "flash.img")}
        r = run_device("dev_offline_unreachable.py", cfg, heap=HEAP, timeout=90)
        assert ("RAISED OSError" in r.out) == (not link), r.out
    finally:
        lst.close()
