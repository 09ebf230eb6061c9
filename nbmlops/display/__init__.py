"""HTML renderers shared by every face (magics, widgets, reports)."""
