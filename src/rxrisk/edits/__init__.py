"""The point-of-sale safety-edit replay (``rxrisk edits``, :func:`rxrisk.replay_edits`)."""
