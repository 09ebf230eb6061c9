"""The records the store keeps, one typed declaration each: every field name is written here once.

Records stay plain dicts at run time (TypedDicts: no conversion cost when 100,000 runs are listed,
and the JSON on disk is exactly these fields); a type checker checks every use of a field name.
Documents read from an older store may lack a field added later: such fields are ``NotRequired``
and read with ``.get``. Migrations stay in ``nbmlops.store`` (``MIGRATIONS``).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# -- tracking & registry (runs, experiments, datasets, models) ---------------------------------
# (section owned by the tracking/registry restructuring)

# -- serving, monitoring & features (deployments, drift summaries, feature views) --------------
# (section owned by the serving/monitoring/features restructuring)

# -- pipelines (definitions, runs, cache entries, decisions) -----------------------------------
# (section owned by the pipelines/export restructuring)
