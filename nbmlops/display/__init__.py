"""HTML renderers shared by every face (magics, widgets, reports); the domain returns data and its
objects' one-line ``_repr_html_`` delegate here.

- ``style``     colours and shared inline CSS (the only place a colour is written)
- ``html``      badges, key/value tables, run, experiment and store cards
- ``runs``      the runs table, parameter differences, metric curves and scatter pictures
- ``datasets``  dataset versions and their differences
- ``registry``  model versions and their comparison
- ``features``  feature views, services and the definitions table
- ``serving``   deployments and A/B summaries
- ``drift``     the drift report (inline, and the saved page with its sorting script ``SORT_JS``)
- ``plots``     the drift report's small pictures as inline SVG (escaped text, no script)
- ``pipelines`` the DAG as SVG, run tables, retrain decisions, and a running pipeline's live table
"""
