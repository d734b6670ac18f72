"""paperwire's daemon: settings, wiring, CLI, scheduler, jobs, feeds, the store and the web app."""
