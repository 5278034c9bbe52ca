"""Ray job entry point: `python jobs/scrape.py [options]` takes the options of `arcray scrape`.

Runs on the cluster's head (or a KubeRay submitter) with RAY_ADDRESS set, so the stage joins
the cluster instead of starting a local one.
"""

import sys

from arcray.cli.main import main

if __name__ == "__main__":
    main(["scrape", *sys.argv[1:]])
