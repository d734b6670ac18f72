"""The web side: signed links in digests (`links`), the pages they open (`feedback`), and the
FastAPI app that serves them (`pages.make_web`). Importing this package loads nothing heavy."""
