"""Ray job entry point: scrape the observing logs, then download the frames they list.

`python jobs/ingest.py [arcray scrape options] -- [arcray download options]`

A scrape whose failed months exceed its --max-failures (exit code 1: everything else written)
still lets the download run on what was scraped; the job then exits 1. Any other error stops it.
"""

import sys

from arcray.cli.main import main


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else int(exc.code)
    return 0


if __name__ == "__main__":
    scrape_args, download_args = split_args(sys.argv[1:])
    scraped = _run(["scrape", *scrape_args])
    if scraped not in (0, 1):
        sys.exit(scraped)
    sys.exit(_run(["download", *download_args]) or scraped)
