"""Ray job entry point: scrape the observing logs, then download the frames they list.

`python jobs/ingest.py [arcray scrape options] -- [arcray download options]`
"""

import sys

from arcray.cli.main import main


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


if __name__ == "__main__":
    scrape_args, download_args = split_args(sys.argv[1:])
    try:
        main(["scrape", *scrape_args])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    main(["download", *download_args])
