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
class ExperimentRecord(TypedDict):
    """db/experiments.json: a named group of runs."""
    schema: int
    id: str
    name: str
    created: int
    tags: dict[str, str]


class MetricSummary(TypedDict):
    """A metric of a run: its last point (``value`` at the highest ``step``) and its min, max, count."""
    value: float
    step: int
    timestamp: int
    min: float
    max: float
    count: int


class ArtifactEntry(TypedDict):
    """A file a run stored: ``kind`` is "file", "text" or "figure"."""
    name: str
    sha256: str
    size: int
    kind: str


class FrameRef(TypedDict):
    """A stored DataFrame (a monitoring reference): its Parquet blob, rows and columns."""
    sha256: str
    size: int
    rows: int
    columns: list[str]


# "class" is a keyword: the functional form
ModelEntry = TypedDict("ModelEntry", {
    "name": str,
    "sha256": str,
    "size": int,
    "format": NotRequired[str],
    "class": str,
    "datasets": list[str],              # fingerprints (sha256) of the data it was trained on
    "versions": dict[str, str],         # scikit-learn, numpy, python
    "signature": NotRequired[dict[str, Any]],
    "reference": NotRequired["FrameRef | None"],
})
ModelEntry.__doc__ = """A model a run logged (``log_model``); signature and reference when it could be described."""


class RunDataset(TypedDict):
    """A dataset a run used: its fingerprint, and the version when it was snapshotted."""
    name: str
    sha256: str
    kind: str
    shape: list[int] | None
    columns: list[str] | None
    dtypes: list[str] | dict[str, str] | None
    role: NotRequired[str]
    version: NotRequired[int]           # snapshotted: the dataset version
    dataset_id: NotRequired[str]
    snapshot: NotRequired[str | None]   # sha256 of the stored rows


class RunRecord(TypedDict):
    """db/runs/<experiment>/<xx>.json: one run."""
    schema: int
    id: str
    experiment_id: str
    name: str
    status: str                         # RUNNING, FINISHED, FAILED, KILLED
    start_time: int
    end_time: int | None
    duration: float | None
    user: str | None
    host: str | None
    pid: int | None
    description: str | None
    tags: dict[str, str]
    params: dict[str, Any]
    metrics: dict[str, MetricSummary]
    artifacts: list[ArtifactEntry]
    models: list[ModelEntry]
    datasets: list[RunDataset]
    source_sha: str | None
    env_sha: str | None
    python: str | None
    git_commit: str | None
    notebook: str | None
    cell_key: str | None
    previous_run: str | None
    same_as: str | None
    error: str | None
    parent_run: str | None
    deleted: bool
    identity: NotRequired[str]          # set when the run ends


class ActiveRecord(TypedDict):
    """db/active.json: a run in progress and the process that owns it (the stale-run sweep)."""
    schema: int
    run_id: str
    experiment_id: str
    pid: int
    pid_start: NotRequired[str | None]
    pid_space: NotRequired[str]
    host: str


class CellRecord(TypedDict):
    """db/cells.json: the last run of a notebook cell (re-run links)."""
    schema: int
    key: str
    run_id: str
    identity: str
    same_as: str | None


class DatasetRecord(TypedDict):
    """db/datasets.json: a dataset (its versions are in db/datasets/<id>.json)."""
    schema: int
    id: str
    name: str
    next_version: int
    created: int
    updated: NotRequired[int]
    latest: NotRequired[int]


class DatasetBlob(TypedDict):
    """The stored rows of a dataset version."""
    sha256: str
    size: int
    format: str                         # "parquet"


class DatasetVersionRecord(TypedDict):
    """db/datasets/<dataset id>.json: one version of a dataset."""
    schema: int
    id: str
    dataset_id: str
    name: str
    version: int
    sha256: str
    kind: str
    shape: list[int] | None
    rows: int | None
    columns: list[str] | None
    dtypes: list[str] | dict[str, str] | None
    blob: DatasetBlob | None            # None: over the snapshot limit, or not a table
    note: str | None                    # why there is no blob
    summary: dict[str, dict[str, Any]] | None  # per column
    restore: dict[str, Any]             # how to give the data back (series_name, ndim, column_names)
    source: str | None                  # the file it was read from
    created: int
    user: str | None
    run_id: str | None
    run_name: str | None


# "from" is a keyword: the functional form
ModelHistoryEntry = TypedDict("ModelHistoryEntry", {
    "time": int,
    "user": str | None,
    "action": str,                      # register, alias, delete
    "version": NotRequired[int],        # register, delete
    "alias": NotRequired[str],          # alias
    "from": NotRequired["int | None"],  # alias: the version it pointed at
    "to": NotRequired["int | None"],    # alias: the version it points at now (None: deleted)
})


class RegisteredModelRecord(TypedDict):
    """db/models.json: a registered model (its versions are in db/models/<id>.json)."""
    schema: int
    id: str
    name: str
    description: str | None
    tags: dict[str, str]
    aliases: dict[str, int]
    next_version: int
    created: int
    updated: NotRequired[int]
    history: list[ModelHistoryEntry]


class MonitoringEntry(TypedDict):
    """A drift report's summary stored on a model version (the last 100 are kept); the rest of
    its fields are the report's ``summary``."""
    time: int
    drift_id: NotRequired[str]


ModelVersionRecord = TypedDict("ModelVersionRecord", {
    "schema": int,
    "id": str,
    "model_id": str,
    "model": str,                       # the model's name
    "version": int,
    "sha256": str,
    "size": int,
    "format": str,
    "class": str,
    "created": int,
    "user": str | None,
    "description": str | None,
    "tags": dict[str, str],
    "signature": dict[str, Any],
    "deleted": bool,
    "monitoring": list[MonitoringEntry],
    "run_id": str | None,
    "run_name": str | None,
    "experiment_id": str | None,
    "params": dict[str, Any],
    "metrics": dict[str, float],
    "datasets": list[RunDataset],
    "reference": "FrameRef | None",
})
ModelVersionRecord.__doc__ = """db/models/<model id>.json: one version of a registered model."""


# -- serving, monitoring & features (deployments, drift summaries, feature views) --------------
# (section owned by the serving/monitoring/features restructuring)
class DeploymentSettings(TypedDict):
    """What a deployment was started with; a running one is reused only when asked the same."""
    model_uri: str
    token_sha256: str | None
    ab: dict[str, float] | None         # A/B weights by version (as text)
    shadow: int | None
    host: str
    port: int                           # 0: any free port
    batching: bool
    max_batch_size: int
    max_latency_ms: float
    max_queue: int
    log_requests: bool
    accuracy_window: NotRequired[int]   # labels in model_accuracy_windowed (older records: none)
    monitor: NotRequired[dict[str, Any] | None]  # {"window": rows or "1h", "every": rows}; None: no live monitor


class DeploymentRecord(TypedDict):
    """db/deployments.json: a model server started by ``serve()`` and its state."""
    schema: int
    id: str
    name: str
    model_uri: str
    model: str
    version: int
    features: list[str] | None
    host: str
    port: int | None                    # None until the server listens
    pid: int | None                     # None while the starting process has not spawned it yet
    pid_start: str | None
    host_name: str
    started: int
    status: str                         # starting, running, stopped, dead, failed
    detach: bool
    auth: bool
    batching: bool
    log_requests: bool
    settings: NotRequired[DeploymentSettings]
    admin_token: NotRequired[str]
    sha256: NotRequired[str]            # the served model's, once running
    weights: NotRequired[dict[str, float]]
    shadow: NotRequired[int | None]
    follows_alias: NotRequired[str | None]
    switches: NotRequired[list[dict[str, Any]]]
    load_error: NotRequired[str]
    error: NotRequired[str]             # why it failed
    stopped: NotRequired[int]


class RequestRecord(TypedDict):
    """logs/serving/<deployment>/requests-NNNNNN.jsonl: one line each, of three kinds told apart by
    their keys: a scored request (id, v, lat, rows, out; a shadow copy also ``shadow``, and only
    ``error`` instead of rows, out and lat if it failed), the labels of an earlier request's rows
    (feedback: its id, v, rows, labels, correct) or a routing event (event)."""
    t: int                              # ms
    id: NotRequired[str]
    v: NotRequired[int]
    lat: NotRequired[float]
    rows: NotRequired[list[Any]]        # scored: the input rows; feedback: their indexes
    out: NotRequired[list[Any]]
    shadow: NotRequired[bool]
    error: NotRequired[str]
    feedback: NotRequired[str]          # the id of the labelled request
    labels: NotRequired[list[Any]]
    correct: NotRequired[list[bool]]
    event: NotRequired[dict[str, Any]]  # an alias switch, new weights, a failed switch


class BlobRef(TypedDict):
    sha256: str
    size: int


class DriftSummaryRecord(TypedDict):
    """db/drift/<YYYY-MM>.json: a logged drift report; its full numbers and page are blobs."""
    schema: int
    id: str
    time: int
    model: str | None
    model_name: str | None
    model_version: int | None
    sources: dict[str, Any]
    summary: dict[str, Any]             # DriftReport.summary
    report: BlobRef                     # report.to_json()
    html: NotRequired[BlobRef]          # the saved page
    run_id: str | None
    window: NotRequired[LiveWindowRecord]  # a serving process's live monitor wrote it (no page)


class LiveWindowRecord(TypedDict):
    """One window of served traffic a live monitor compared with the version's reference."""
    deployment: str | None
    rows: int
    first: int                          # time of its oldest and newest rows, ms
    last: int
    drift_share: float
    estimated: dict[str, float]         # CBPE accuracy/roc_auc/f1 or DLE mae/rmse
    realized: dict[str, Any]            # from /feedback labels within the window, with their count
    data: NotRequired[dict[str, Any]]   # its rows as a Parquet blob: sha256, size, format


class FeatureField(TypedDict):
    name: str
    dtype: str


class FeatureSourceRecord(TypedDict):
    """A view's source: a DataFrame snapshot (``kind`` "dataframe") or a file ("parquet", "csv")."""
    kind: str
    timestamp_field: str
    created_timestamp_column: str | None
    path: NotRequired[str]              # files
    sha256: NotRequired[str | None]     # DataFrame snapshots: the Parquet blob
    fingerprint: NotRequired[str]
    rows: NotRequired[int]
    schema: NotRequired[dict[str, list[str]]]


class _StoredDefinition(TypedDict):
    """db/features.json: what every definition carries once applied."""
    schema: NotRequired[int]
    id: NotRequired[str]
    version: NotRequired[int]
    created: NotRequired[int]
    updated: NotRequired[int]
    name: str
    description: NotRequired[str]
    tags: NotRequired[dict[str, str]]


class EntityRecord(_StoredDefinition):
    kind: str                           # "entity"
    join_keys: list[str]
    key_types: dict[str, str | None]


class FeatureViewRecord(_StoredDefinition):
    kind: str                           # "view"
    entities: list[str]
    join_keys: list[str]
    key_types: dict[str, str]
    features: list[FeatureField]
    source: FeatureSourceRecord
    ttl: float | None                   # seconds
    online: bool


class OnDemandViewRecord(_StoredDefinition):
    kind: str                           # "ondemand"
    inputs: list[str]                   # VIEW:FEATURE
    request_schema: dict[str, str]
    features: list[FeatureField]
    udf_name: str
    udf_source: str
    udf_sha: str


class FeatureServiceRecord(_StoredDefinition):
    kind: str                           # "service"
    features: list[str]                 # VIEW or VIEW:FEATURE


FeatureDefinition = EntityRecord | FeatureViewRecord | OnDemandViewRecord | FeatureServiceRecord
"""db/features.json: one document per entity, view, on-demand view and service (``kind``)."""


class OnlineTableRecord(TypedDict):
    """db/online.json: a view's online table (an Arrow IPC blob) and its materializations."""
    view: str
    view_version: int | None
    sha256: str
    bytes: int
    rows: int
    start: int | None                   # ns, the last materialization's window
    end: int
    intervals: list[list[int | None]]   # the last 20 windows of this view version
    materialized_at: int                # ms
    newest: int | None                  # the newest event time held (ns)
    source_newest: NotRequired[int | None]

# -- pipelines (definitions, runs, cache entries, decisions) -----------------------------------
# (section owned by the pipelines/export restructuring)
class PipelineDefinitionRecord(TypedDict):
    """db/pipelines/definitions.json: the latest definition of a pipeline (``Pipeline.to_dict()``)."""
    schema: int
    name: str
    definition: dict[str, Any]
    updated: int


class StepRef(TypedDict):
    """A step input or output: a dataset version or a model file, identified by its sha256."""
    kind: str                   # "dataset" | "model"
    name: str
    sha256: str                 # dataset: content hash; model: file hash
    version: NotRequired[int]   # dataset
    blob: NotRequired[str | None]  # dataset: sha256 of its stored rows
    uri: NotRequired[str]       # model from the registry: "name/version"
    run_id: NotRequired[str]    # model logged by a step's run
    format: NotRequired[str]    # model file format


class CachedFrom(TypedDict):
    run_id: str
    pipeline_run: str
    pipeline: str | None
    time: int


class StepReport(TypedDict):
    notebook: str
    html: str | None
    attempt: int


class PipelineStepRecord(TypedDict):
    """One step inside a pipeline run document."""
    state: str                  # pending, running, done, cached, failed, skipped
    kind: str                   # notebook | function
    upstream: list[str]
    key: str | None             # cache key
    run_id: str | None          # tracked run (of the last attempt, or the one cached from)
    runs: list[str]             # tracked runs of every attempt
    attempts: int
    inputs: dict[str, StepRef]
    outputs: dict[str, StepRef]
    params: dict[str, Any]
    cached_from: CachedFrom | None
    started: int | None
    ended: int | None
    duration: float | None
    error: str | None
    report: StepReport | None
    resumed: NotRequired[bool]               # kept from before a resume
    previous_attempts: NotRequired[list[str]]  # runs before a resume
    note: NotRequired[str]                   # why skipped


class PipelineRunRecord(TypedDict):
    """db/pipelines/runs/<xx>.json: one run of a pipeline, with its owner process and its steps."""
    schema: int
    id: str
    pipeline: str
    params: dict[str, Any]
    signature: str
    experiment: str
    status: str                 # RUNNING, FINISHED, FAILED, KILLED
    start_time: int
    end_time: int | None
    duration: float | None
    cache: bool
    resumed: int
    error: str | None
    failed_step: str | None
    order: list[str]
    steps: dict[str, PipelineStepRecord]
    pid: int
    pid_start: str | None
    host: str
    user: str
    resumed_time: NotRequired[int]


class CacheEntryRecord(TypedDict):
    """db/pipelines/cache/<xx>.json: the outputs of a step execution, by cache key."""
    schema: int
    key: str
    pipeline: str
    step: str
    pipeline_run: str
    run_id: str
    outputs: dict[str, StepRef]
    time: int


class DriftEvidence(TypedDict):
    drift_id: str
    dataset_drift: bool
    share_drifted: float
    n_columns: int
    n_drifted: int
    drifted_columns: list[str]
    rows: dict[str, int]        # reference, current
    window: NotRequired[str]    # the live monitor's drifted window (drift history id) it retrained on


class DecisionMetrics(TypedDict):
    metric: str
    production: float
    candidate: float
    gain: float
    rows: int


class RetrainDecisionRecord(TypedDict):
    """db/pipelines/decisions/<YYYY-MM>.json: what ``retrain_on_drift`` decided, with its evidence."""
    schema: int
    id: str
    time: int
    model: str
    model_name: str
    production: str
    candidate: str | None
    threshold: float
    margin: float
    auto_promote: bool
    pipeline: str
    pipeline_run: str | None
    dataset: str | None
    drift: DriftEvidence
    metrics: DecisionMetrics | None
    decision: str | None        # no-drift, promoted, candidate-better, kept-production, failed
    reason: str | None
