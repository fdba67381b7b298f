"""Arguments the application passes, refused before anything changes
(tests/device/dev_app_args.py), against a real mosquitto: a client_id over 65535 bytes
(the store made its session and pointed "last" at it: no later start found the node's
session), user, password or will payload over 65535 bytes (a malformed CONNECT at every
attempt), subscribe(filter, None) (it unsubscribed), version=4.0, a timeout out of range
or NaN, the asyncio connect(clean_session=1) (it resumed), set_callback() of something
not callable (the next message acknowledged and lost), Link(factor=nan), and a QoS 1/2
message whose store record cannot exceed 65535 bytes (sent, then refused as "store
full": the application published it again)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device

CASES = ["cid_store_last", "long_credentials", "sub_qos_none", "aio_sub_qos_none",
         "version_float", "timeout_bad", "aio_clean_one", "callback_noncallable", "link_nan",
         "big_store_msg", "get_capacity_bad", "get_cid_long", "link_on_change",
         "aio_hooks", "root_nul"]


@pytest.mark.parametrize("case", CASES)
def test_bad_argument_is_refused_and_changes_nothing(broker: Broker, tmp_path: Path,
                                                     case: str) -> None:
    cfg = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "TEST": case,
           "PREFIX": f"args{case}", "ROOT": str(tmp_path / "store")}
    r = run_device("dev_app_args.py", cfg, heap="2m", timeout=90, check=False)
    assert r.passed, r.out
