"""Ray job entry point: `python jobs/night.py [options]` takes the options of `arcray night`.

The whole chain for one night (scrape, download, calibrate, measure, verdict per camera): exit 0
when every camera is green, 1 when a camera is red. The Helm chart's nightly RayCronJob runs
`python /app/jobs/night.py --root ROOT --yesterday ...`; the backfill runs it once per night through
`python -m arcray.deploy.backfill`. Runs on the cluster's head (or a KubeRay submitter) with
RAY_ADDRESS set, so the stage joins the cluster instead of starting a local one.
"""

import sys

from arcray.cli.main import main

if __name__ == "__main__":
    main(["night", *sys.argv[1:]])
