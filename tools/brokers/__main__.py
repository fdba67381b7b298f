"""python tools/brokers KIND: one broker in the foreground on a free loopback port."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import usevenv  # noqa: E402  (a system Python lacks paho and amqtt: run in .venv)

usevenv.ensure(modules=("paho", "amqtt"), programs=("mosquitto",))

from brokers import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
