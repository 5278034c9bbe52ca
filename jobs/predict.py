"""Ray job entry point: `python jobs/predict.py [options]` takes the options of `arcray predict`.

Runs on the cluster's head (or a KubeRay submitter) with RAY_ADDRESS set, so the stage joins
the cluster instead of starting a local one.
"""

import sys

from arcray.cli.main import main

if __name__ == "__main__":
    main(["predict", *sys.argv[1:]])
