"""ipywidgets faces: thin panels over the public API (never the store files)."""
