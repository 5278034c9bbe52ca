"""Ingest, pure: the Mailman and SAS clients, the night-log parser and the manifests. No Ray here;
the scrape and download stages that drive them are in ``arcray.pipeline``."""
