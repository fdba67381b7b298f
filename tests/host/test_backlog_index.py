"""The backlog's segment index in RAM (12 bytes a segment, given room by qseg.seal). Up
to 0.2.23 its three arrays grew 8 entries at a time as segments were sealed, each growth
a new piece of heap beside the others: queueing 10,000 offline left the heap in pieces
and needed about 120 KiB of it, more than an ESP32 has free (booting with them needed
97). Now the room for as many segments as the store's max_bytes holds is given at a
backlog's ninth seal (and at the first after a boot, whose load grows the index as it
finds them), so later seals allocate nothing for the index; the drain frees it with the
last segment. QoS 2 messages online, a segment of one sealed and removed every 32 of
them, neither take the room nor make new arrays."""

from __future__ import annotations

from pathlib import Path

from harness import BrokerFactory, free_port, run_device

COUNT = 2000  # about 63 segments of 32
BLOCKS = 256
MAXB = 1024 * 1024  # room for 258 segments


def node(img: Path, phase: str, port: int) -> dict[str, object]:
    return {"HOST": "127.0.0.1", "PORT": port, "VERSION": 4, "PREFIX": "index",
            "CID": "index", "IMAGE": img.name, "BLOCKS": BLOCKS, "PROG": 32,
            "COUNT": COUNT, "MAXB": MAXB, "PHASE": phase}


def test_segment_index_takes_room_once_and_gives_it_back(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    img = tmp_path / "flash.img"
    for k in (1, 2):  # a fresh store, then a boot with that backlog: COUNT more
        r = run_device("dev_backlog_index.py", node(img, "queue", free_port()), heap="256k",
                       timeout=300, workdir=tmp_path)
        assert r.value("QUEUED") == str(k * COUNT), r.out[-2000:]
        grew, segs = (int(x) for x in r.value("GREW").split())
        # 50 segments sealed offline: 600 bytes of index had it grown as it went
        assert segs >= 50, r.out[-2000:]
        assert grew < 12 * segs // 4, f"run {k}: {grew} bytes of heap for {segs} segments"
    broker = broker_factory(verbose=False)
    r = run_device("dev_backlog_index.py", node(img, "drain", broker.port), heap="256k",
                   timeout=300, workdir=tmp_path)
    pending, found = (int(x) for x in r.value("BOOT").split())
    assert pending == 2 * COUNT and found >= 120, r.out[-2000:]
    assert r.value("DRAINED") == "0 0", r.out[-2000:]
    assert int(r.value("AFTER")) > 0, r.out[-2000:]  # the last segment freed the room
    # QoS 2 online seals a segment per 32 messages, removed once answered: the index keeps
    # its arrays (their room is given to a backlog only, from its ninth segment)
    assert r.value("SAME") == "1 8", r.out[-2000:]
