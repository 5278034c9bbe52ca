"""The static HTML report (``arcray report``)."""
