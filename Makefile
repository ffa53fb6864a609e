# Set-up and checks. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# System packages the appliance needs: kamailio is the SIP front for more than 4 calls.
RUN_DEBS  := kamailio mosquitto
# The demo's voices: festival's unit-selection voice made of festvox-ru's real recordings.
DEMO_DEBS := festival festvox-ru
# System packages the tests need (real SIP peers, the MQTT broker, certificate tools, the
# browser, the demo's voices; festvox-ru is also the tests' real speech, and
# asterisk-moh-opsound-wav's CC-BY-SA recordings their real music on hold; espeak-ng's
# synthetic voices check that the music detector takes no monotone voice for music).
TEST_DEBS := $(RUN_DEBS) $(DEMO_DEBS) sip-tester mosquitto openssl chromium fonts-dejavu-core systemd \
             asterisk-moh-opsound-wav espeak-ng

.PHONY: run demo check test install install-test bench image image-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# silero-vad: its model file only (the second opinion on music); the package pulls torch
SILERO := silero-vad==6.2.3

install: $(PY)
	bash tests/install-system-deps.sh $(RUN_DEBS)
	$(PIP) install -e .
	$(PIP) install --no-deps $(SILERO)
	$(VENV)/bin/appliance models build

install-test: $(PY)
	bash tests/install-system-deps.sh $(TEST_DEBS)
	$(PIP) install -e '.[test]'
	$(PIP) install --no-deps $(SILERO)
	$(VENV)/bin/appliance models build
	bash tests/fetch-speech-data.sh

run: install
	$(VENV)/bin/appliance run

# With `make run` going in another terminal: a simulated PBX places calls to it.
demo: install
	bash tests/install-system-deps.sh $(DEMO_DEBS)
	$(VENV)/bin/appliance demo

# The quick loop: lint and every test not marked slow (about 2 minutes on 2 cores).
check: install-test
	$(VENV)/bin/ruff check appliance bench tests
	$(PY) -m pytest -m "not slow" -q

# The whole suite: what CI runs.
test: install-test
	$(VENV)/bin/ruff check appliance bench tests
	$(PY) -m pytest

bench: install-test
	$(PIP) install -e '.[bench]'
	$(PY) bench/accuracy.py
	$(PY) bench/background.py
	$(PY) bench/speed.py
	$(PY) bench/asr.py
	$(PY) bench/store.py
	$(PY) bench/mqtt.py
	$(PY) bench/web.py
	$(PY) bench/redaction.py
	$(PY) bench/soak.py --calls 5000 --capacity 32 --mean-s 8 --max-s 120 --no-asr

# The box's disk image (root; see firmware/README.md) and its boot test in qemu.
IMAGE_DEBS := debootstrap e2fsprogs fdisk grub-pc-bin grub2-common qemu-system-x86 curl
image: install
	bash tests/install-system-deps.sh $(IMAGE_DEBS)
	bash firmware/build-image.sh

image-test:
	bash tests/install-system-deps.sh $(IMAGE_DEBS)
	bash firmware/smoke-test.sh $$(ls -t build/image/appliance-*.img | head -1)

clean:
	rm -rf $(VENV) build appliance/native/*.so native/*.c
