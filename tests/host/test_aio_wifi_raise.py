"""The asyncio client's keeper with a board layer whose wifi_start()/wifi_poll() raise
(tests/device/dev_aio_wifi_raise.py): a raise is a failed attempt, as for the blocking
client (test_wifi_raise.py): the keeper backs off and starts the radio again. Before, the
raise ended the reader for good: connect() raised it and the node stayed offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import Observer, start_device


@pytest.mark.parametrize("test", ["start", "poll"])
def test_aio_wifi_call_that_raised_is_tried_again(broker_factory: Any, tmp_path: Path,
                                                  test: str) -> None:
    b = broker_factory()
    pre = f"awr-{tmp_path.name}"
    cfg = {"HOST": b.host, "PORT": b.port, "TEST": test, "VERSION": 4,
           "CID": f"awr-{tmp_path.name}"[-23:], "PREFIX": pre}
    with Observer(b.host, b.port, f"{pre}/r", qos=1) as obs:
        dev = start_device("dev_aio_wifi_raise.py", cfg, heap="256k")
        try:
            r = dev.result(timeout=60)
        finally:
            dev.close()
        assert r.passed, r.out
        assert [m.payload for m in obs.wait_for(1)] == [b"reading"], r.out
