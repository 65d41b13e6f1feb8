"""venv/bin/python -m bench.controlplane: see bench/controlplane/bench.py."""

from bench.controlplane.bench import main

main()
