"""Tests of the test harness itself: brokers, TLS material, device runs, observers."""

from __future__ import annotations

import filecmp
import os
import socket
import ssl
import time
from pathlib import Path

import pytest

import harness
from harness import (
    Broker,
    BrokerFactory,
    Certs,
    Devices,
    Observer,
    free_port,
    heap_arg,
    publish,
    run_device,
)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_free_port_is_outside_the_ephemeral_range() -> None:
    """No connecting socket (another test's client, say) can take a port free_port gave
    while its server is not listening yet, and one process hands a port out once."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    if low < 11_024:
        pytest.skip(f"the ephemeral range starts at {low}: free_port takes port 0's pick")
    ports = [free_port() for _ in range(100)]
    assert all(low - 10_000 <= p < low for p in ports), ports
    assert len(set(ports)) == len(ports)
    with socket.create_server(("127.0.0.1", 0)) as server:
        for _ in range(50):  # the premise: a connecting socket's own port is in the range
            with socket.create_connection(server.getsockname(), 5) as c:
                assert c.getsockname()[1] >= low
                server.accept()[0].close()


def test_broker_round_trip(broker: Broker) -> None:
    with Observer(broker.host, broker.port, "harness/rt/#", qos=1) as obs:
        publish(broker.host, broker.port, "harness/rt/a", b"one", qos=1)
        publish(broker.host, broker.port, "harness/rt/b", "two", qos=0)
        msgs = obs.wait_for(2, timeout=5)
    assert [(m.topic, m.payload) for m in msgs] == [
        ("harness/rt/a", b"one"),
        ("harness/rt/b", b"two"),
    ]
    assert msgs[0].qos == 1 and not msgs[0].retain and not msgs[0].dup


def test_broker_round_trip_mqtt5(broker: Broker) -> None:
    with Observer(broker.host, broker.port, "harness/v5", qos=2, protocol=5) as obs:
        publish(broker.host, broker.port, "harness/v5", b"\x00\xff", qos=2, protocol=5)
        (m,) = obs.wait_for(1, timeout=5)
    assert m.payload == b"\x00\xff" and m.qos == 2


def test_broker_log_is_written(broker: Broker) -> None:
    publish(broker.host, broker.port, "harness/log", b"x")
    assert "mosquitto version" in broker.log()


def test_restart_keeps_port(broker_factory: BrokerFactory) -> None:
    b = broker_factory()
    port = b.port
    b.restart()
    assert b.port == port and b.running
    publish(b.host, b.port, "harness/restart", b"x", qos=1)
    b.stop()
    assert not b.running
    with pytest.raises(OSError):
        socket.create_connection((b.host, port), timeout=1).close()


def test_persistence_keeps_retained_message(broker_factory: BrokerFactory) -> None:
    b = broker_factory(persistence=True)
    publish(b.host, b.port, "harness/keep", b"retained", qos=1, retain=True)
    b.restart()
    with Observer(b.host, b.port, "harness/keep", qos=1) as obs:
        (m,) = obs.wait_for(1, timeout=5)
    assert m.payload == b"retained" and m.retain
    assert list(b.persistence_dir.iterdir()), "no persistence file written"


def test_no_persistence_loses_retained_message(broker_factory: BrokerFactory) -> None:
    b = broker_factory()
    publish(b.host, b.port, "harness/lost", b"retained", qos=1, retain=True)
    b.restart()
    with Observer(b.host, b.port, "harness/lost", qos=1) as obs:
        time.sleep(0.3)
        assert obs.messages == []


def test_pause_and_resume(broker_factory: BrokerFactory) -> None:
    b = broker_factory()
    with Observer(b.host, b.port, "harness/pause", qos=1) as obs:
        b.pause()
        with pytest.raises(AssertionError):
            publish(b.host, b.port, "harness/pause", b"x", qos=1, timeout=0.5)
        b.resume()
        publish(b.host, b.port, "harness/pause", b"y", qos=1)
        assert obs.wait_for(1, timeout=5)[-1].payload == b"y"


def test_paused_broker_stops(broker_factory: BrokerFactory) -> None:
    b = broker_factory()
    b.pause()
    t = time.monotonic()
    b.stop()
    assert not b.running and time.monotonic() - t < 20  # no hang: stop kills it


def test_extra_config_and_max_keepalive(broker_factory: BrokerFactory) -> None:
    b = broker_factory(max_keepalive=10, extra=["max_inflight_messages 5"])
    conf = b.config_path.read_text()
    assert "max_keepalive 10" in conf and "max_inflight_messages 5" in conf
    publish(b.host, b.port, "harness/x", b"x", qos=1)


def test_bad_config_reports_log(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="mosquitto exited"):
        Broker(tmp_path, extra=["no_such_option 1"]).close()


# -- TLS


def test_tls_with_right_ca(broker_factory: BrokerFactory, certs: Certs) -> None:
    b = broker_factory(tls=True)
    assert b.tls_port and b.tls_port != b.port
    with Observer(b.host, b.tls_port, "harness/tls", qos=1, tls_ca=certs.ca_cert) as obs:
        publish(b.host, b.tls_port, "harness/tls", b"secret", qos=1, tls_ca=certs.ca_cert)
        publish("localhost", b.tls_port, "harness/tls", b"by name", qos=1, tls_ca=certs.ca_cert)
        assert [m.payload for m in obs.wait_for(2)] == [b"secret", b"by name"]


def test_tls_with_wrong_ca_fails(broker_factory: BrokerFactory, certs: Certs) -> None:
    b = broker_factory(tls=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        publish(b.host, b.tls_port or 0, "harness/tls", b"x", tls_ca=certs.wrong_ca_cert)


def test_cert_der_matches_pem(certs: Certs) -> None:
    assert certs.ca_der == ssl.PEM_cert_to_DER_cert(certs.ca_cert.read_text())
    assert certs.ca_der != certs.wrong_ca_der
    assert certs.ca_der[0] == 0x30  # an ASN.1 SEQUENCE


def test_device_tls_with_der_ca(broker_factory: BrokerFactory, certs: Certs) -> None:
    b = broker_factory(tls=True)
    cfg = {
        "HOST": b.host,
        "TLS_PORT": b.tls_port,
        "CA_DER": certs.ca_der,
        "SERVER_NAME": "localhost",
    }
    r = run_device("dev_tls_hello.py", cfg)
    assert r.values("CONNACK") == [["2", "0"]]


def test_device_tls_with_wrong_ca_fails(broker_factory: BrokerFactory, certs: Certs) -> None:
    b = broker_factory(tls=True)
    cfg = {
        "HOST": b.host,
        "TLS_PORT": b.tls_port,
        "CA_DER": certs.wrong_ca_der,
        "SERVER_NAME": "localhost",
    }
    r = run_device("dev_tls_hello.py", cfg, check=False)
    assert not r.passed and r.values("TLS_ERROR"), r.out


# -- device scripts


def test_run_device_hello(broker: Broker) -> None:
    r = run_device("dev_hello.py", {"HOST": broker.host})
    assert r.rc == 0 and r.passed
    assert r.values("HOST") == [["127.0.0.1"]]
    assert r.value("HOST") == "127.0.0.1"
    assert r.lines[-1] == "PASS"


def test_devcfg_values_round_trip(tmp_path: Path) -> None:
    script = tmp_path / "dev_cfg_echo.py"
    script.write_text(
        "import devcfg\n"
        "for k in ('S', 'I', 'B', 'T', 'F', 'N'):\n"
        "    print('VAL', k, repr(getattr(devcfg, k)))\n"
        "print('PASS')\n"
    )
    cfg = {"S": "a b", "I": -7, "B": b"\x00\xffz", "T": True, "F": False, "N": None}
    r = run_device(script, cfg)
    got = {k: v for k, v in r.values("VAL", maxsplit=1)}
    assert got == {k: repr(v) for k, v in cfg.items()}


def test_devcfg_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        run_device("dev_hello.py", {"HOST": ["127.0.0.1"]})
    with pytest.raises(ValueError):
        run_device("dev_hello.py", {"not a name": 1})


def test_run_device_library_on_path(tmp_path: Path) -> None:
    script = tmp_path / "dev_path.py"
    script.write_text(
        "import sys, asyncio\nfor p in sys.path:\n    print('PATH', p)\nprint('PASS')\n"
    )
    r = run_device(script, {}, args=["x"])
    paths = [v[0] for v in r.values("PATH")]
    assert ".frozen" in paths
    # the library and tests/device by short names (harness_device.short_path): the same
    # directory, and a copy of the same files
    real = [os.path.realpath(p) for p in paths]
    assert str(harness.LIB_DIR) in real, paths
    dev = [p for p in paths if os.path.isfile(os.path.join(p, "devlib.py"))]
    assert len(dev) == 1 and len(dev[0]) < 30, paths
    assert filecmp.cmp(os.path.join(dev[0], "devlib.py"), harness.DEVICE_DIR / "devlib.py")


def test_run_device_heap_and_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "dev_heap.py"
    script.write_text(
        "import gc, sys\ngc.collect()\n"
        "print('HEAP', gc.mem_free() + gc.mem_alloc())\nprint('ARGS', *sys.argv[1:])\n"
        "print('PASS')\n"
    )
    monkeypatch.delenv("MQTTS_HEAP_SCALE", raising=False)
    r = run_device(script, {}, heap="128k", args=["a", "b"])
    assert 120_000 < int(r.value("HEAP")) <= 131_072
    assert r.values("ARGS") == [["a", "b"]]
    # MQTTS_HEAP_SCALE: every device heap scaled (the margin survey, README "Tests")
    monkeypatch.setenv("MQTTS_HEAP_SCALE", "0.5")
    r = run_device(script, {}, heap="128k")
    assert 58_000 < int(r.value("HEAP")) <= 65_536
    assert heap_arg("1m") == "heapsize=524288" and heap_arg(1000) == "heapsize=500"
    monkeypatch.setenv("MQTTS_HEAP_SCALE", "half")
    with pytest.raises(ValueError, match="MQTTS_HEAP_SCALE must be a number > 0"):
        heap_arg("64k")


def test_run_device_failure_raises_with_output(tmp_path: Path) -> None:
    script = tmp_path / "dev_fail.py"
    script.write_text("print('STEP 1')\nraise ValueError('broken on purpose')\n")
    with pytest.raises(AssertionError) as e:
        run_device(script, {})
    assert "STEP 1" in str(e.value) and "broken on purpose" in str(e.value)
    r = run_device(script, {}, check=False)
    assert r.rc != 0 and not r.passed and r.values("STEP") == [["1"]]


def test_run_device_without_pass_raises(tmp_path: Path) -> None:
    script = tmp_path / "dev_nopass.py"
    script.write_text("print('PASS')\nprint('but then something else')\n")
    with pytest.raises(AssertionError, match="last line is not PASS"):
        run_device(script, {})


def test_run_device_timeout_kills(tmp_path: Path) -> None:
    script = tmp_path / "dev_hang.py"
    script.write_text("import time\nprint('HANG')\nwhile True:\n    time.sleep(1)\n")
    t = time.monotonic()
    r = run_device(script, {}, timeout=1, check=False)
    assert r.timed_out and not r.passed and time.monotonic() - t < 20  # killed, no hang
    assert "HANG" in r.out


def test_run_device_workdir_is_kept(tmp_path: Path) -> None:
    script = tmp_path / "dev_count.py"
    script.write_text(
        "try:\n    n = int(open('count').read())\nexcept OSError:\n    n = 0\n"
        "open('count', 'w').write(str(n + 1))\nprint('COUNT', n + 1)\nprint('PASS')\n"
    )
    wd = tmp_path / "flash"
    assert run_device(script, {}, workdir=wd).value("COUNT") == "1"
    assert run_device(script, {}, workdir=wd).value("COUNT") == "2"
    assert (wd / "devcfg.py").exists()


def test_start_device_and_kill(tmp_path: Path, devices: Devices) -> None:
    script = tmp_path / "dev_loop.py"
    script.write_text(
        "import time\nprint('READY')\ni = 0\nwhile True:\n"
        "    i += 1\n    print('TICK', i)\n    time.sleep(0.01)\n"
    )
    d = devices.start(script, {})
    assert d.wait_for("READY", timeout=10) == "READY"
    d.wait_for("TICK 3", timeout=10)
    d.kill()
    assert d.wait(5) == -9
    assert "TICK 3" in d.output()


def test_start_device_result(devices: Devices, broker: Broker) -> None:
    d = devices.start("dev_hello.py", {"HOST": broker.host})
    r = d.result(timeout=10)
    assert r.value("HOST") == broker.host


def test_wait_for_reports_exit(tmp_path: Path, devices: Devices) -> None:
    script = tmp_path / "dev_quick.py"
    script.write_text("print('SOMETHING')\n")
    d = devices.start(script, {})
    with pytest.raises(AssertionError, match="exited"):
        d.wait_for("NEVER", timeout=10)


def test_board_option_missing_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "board_port", "/dev/does-not-exist-mqs")
    with pytest.raises(pytest.fail.Exception, match="no such device"):
        run_device("dev_hello.py", {"HOST": "127.0.0.1"})
