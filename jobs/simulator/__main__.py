"""``python -m jobs.simulator``: run the simulator engine until SIGTERM."""

from jobs.simulator.server import main

raise SystemExit(main())
