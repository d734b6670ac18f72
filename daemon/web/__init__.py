"""The web side: signed links in digests (`links`), the pages they open (`feedback`), the
admin's console under /admin (`console`, with `console_people`, `console_config`, `auth`,
`charts`), and the FastAPI app that serves them all (`pages.make_web`). Importing this package
loads nothing heavy."""
